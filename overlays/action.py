"""The action a frame's overlay shows: held keys, mouse velocity and held mouse buttons."""

from __future__ import annotations

from dataclasses import dataclass, field

from framepilot.errors import ConfigError

MOUSE_BUTTONS = ("left", "right", "middle")


@dataclass(frozen=True)
class Action:
    """Inputs held during one interval.

    Args:
        keys: pynput ``Key`` member names (``"left"``, ``"space"``) or single characters (``"w"``).
        mouse: mouse velocity ``(vx, vy)`` in pixels per second of the captured region,
            +x to the right, +y downwards.
        buttons: held mouse buttons, names from ``MOUSE_BUTTONS``.
    """

    keys: frozenset[str] = field(default_factory=frozenset)
    mouse: tuple[float, float] = (0.0, 0.0)
    buttons: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self):
        object.__setattr__(self, "keys", frozenset(self.keys))
        object.__setattr__(self, "buttons", frozenset(self.buttons))
        object.__setattr__(self, "mouse", (float(self.mouse[0]), float(self.mouse[1])))
        bad = sorted(b for b in self.buttons if b not in MOUSE_BUTTONS)
        if bad:
            raise ConfigError(f"unknown mouse button {bad[0]!r}: use one of {', '.join(MOUSE_BUTTONS)}")

    @property
    def is_noop(self) -> bool:
        return not self.keys and not self.buttons and self.mouse == (0.0, 0.0)

    def to_dict(self) -> dict:
        return {"keys": sorted(self.keys), "mouse": list(self.mouse), "buttons": sorted(self.buttons)}

    @classmethod
    def from_dict(cls, d: dict) -> "Action":
        return cls(keys=frozenset(d.get("keys", ())), mouse=tuple(d.get("mouse", (0.0, 0.0))),
                   buttons=frozenset(d.get("buttons", ())))

    def __str__(self) -> str:
        parts = sorted(self.keys) + [f"mouse:{b}" for b in sorted(self.buttons)]
        if self.mouse != (0.0, 0.0):
            parts.append(f"v=({self.mouse[0]:.0f},{self.mouse[1]:.0f})")
        return "+".join(parts) if parts else "no-op"


NOOP = Action()
