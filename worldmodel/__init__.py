"""framepilot's own small video world model: predicts gameplay video with the overlay in it."""

from worldmodel.model import FramepilotUNet, make_scheduler
from worldmodel.text import TextEncoder

__all__ = ["FramepilotUNet", "make_scheduler", "TextEncoder"]
