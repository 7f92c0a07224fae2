"""The resizer the world model's frames go through, in training and at inference: ``framepilot.frames``
(one resizer for the whole project; kept importable from here)."""

from framepilot.frames import resize_frames  # noqa: F401
