"""Overlay layouts: which keys, buttons and mouse pad are drawn, and where. Plain JSON data."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from framepilot.errors import LayoutError

OVERLAY_VERSION = 1  # bump when the drawing changes in a way a trained model would notice

# pynput ``Key`` member names (pynput 1.8, X11) so a layout can be checked without importing pynput.
PYNPUT_KEYS = frozenset("""
alt alt_gr alt_l alt_r backspace caps_lock cmd cmd_l cmd_r ctrl ctrl_l ctrl_r delete down end
enter esc f1 f2 f3 f4 f5 f6 f7 f8 f9 f10 f11 f12 f13 f14 f15 f16 f17 f18 f19 f20 home insert left
media_next media_play_pause media_previous media_volume_down media_volume_mute media_volume_up
menu num_lock page_down page_up pause print_screen right scroll_lock shift shift_l shift_r space
tab up
""".split())

#: the layout presets: every JSON file in ``overlays/presets`` (a new preset is one file there)
PRESETS = tuple(sorted(p.stem for p in (Path(__file__).resolve().parent / "presets").glob("*.json")))
CELL_KINDS = ("key", "button", "mouse")


def is_valid_key_name(name: str) -> bool:
    return name in PYNPUT_KEYS or (len(name) == 1 and name.isprintable() and not name.isspace())




@dataclass(frozen=True)
class Cell:
    """One drawn control. ``box`` is ``(x, y, w, h)``: x and w as fractions of the frame width,
    y and h as fractions of the strip height."""

    kind: str
    name: str
    label: str
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class Layout:
    """A virtual keyboard/mouse overlay.

    Args:
        name: layout name, recorded with checkpoints and recordings.
        cells: keys, mouse buttons and at most one mouse pad.
        strip_ratio: strip height as a fraction of the frame width.
        max_speed: mouse speed drawn as a full-length arrow, pixels per second.
        version: layout version; with ``OVERLAY_VERSION`` it identifies what a model was trained on.
    """

    name: str
    cells: tuple[Cell, ...]
    strip_ratio: float = 0.25
    max_speed: float = 600.0
    version: int = 1
    overlay_version: int = OVERLAY_VERSION
    source: str = field(default="", compare=False)

    def __post_init__(self):
        where = f"layout {self.name!r}{' in ' + self.source if self.source else ''}"
        for name in ("strip_ratio", "max_speed"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise LayoutError(f"{where}: {name} must be a finite number, got {v!r}")
        if not 0.05 <= self.strip_ratio <= 1.0:
            raise LayoutError(f"{where}: strip_ratio must be between 0.05 and 1.0, got {self.strip_ratio}")
        if self.max_speed <= 0:
            raise LayoutError(f"{where}: max_speed must be positive, got {self.max_speed}")
        seen = set()
        for c in self.cells:
            if c.kind not in CELL_KINDS:
                raise LayoutError(f"{where}: cell kind {c.kind!r} is unknown; use one of {', '.join(CELL_KINDS)}")
            if c.kind == "key" and not is_valid_key_name(c.name):
                raise LayoutError(
                    f"{where}: unknown key {c.name!r}; use a single character or a pynput Key name "
                    f"such as {', '.join(sorted(PYNPUT_KEYS)[:12])}, ... (see pynput.keyboard.Key)")
            if c.kind == "button" and c.name not in ("left", "right", "middle"):
                raise LayoutError(f"{where}: unknown mouse button {c.name!r}; use left, right or middle")
            if (c.kind, c.name) in seen:
                raise LayoutError(f"{where}: {c.kind} {c.name!r} appears twice; list each control once")
            seen.add((c.kind, c.name))
            if len(c.box) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                          and math.isfinite(v) for v in c.box):
                raise LayoutError(f"{where}: {c.kind} {c.name!r} box {list(c.box)} must be 4 finite numbers "
                                  "[x, y, w, h]")
            x, y, w, h = c.box
            if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > 1 + 1e-9 or y + h > 1 + 1e-9:
                raise LayoutError(f"{where}: {c.kind} {c.name!r} box {list(c.box)} lies outside the strip; "
                                  "keep x, y >= 0, x + w <= 1 and y + h <= 1")
        if sum(c.kind == "mouse" for c in self.cells) > 1:
            raise LayoutError(f"{where}: at most one mouse pad is allowed")
        for i, a in enumerate(self.cells):
            for b in self.cells[i + 1:]:
                if _overlap(a.box, b.box):
                    raise LayoutError(f"{where}: cells {a.name!r} and {b.name!r} overlap; move one of them")

    # ---- views -------------------------------------------------------------------------------
    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cells if c.kind == "key")

    @property
    def buttons(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.cells if c.kind == "button")

    @property
    def has_mouse(self) -> bool:
        return any(c.kind == "mouse" for c in self.cells)

    def strip_height(self, width: int) -> int:
        return max(1, int(round(self.strip_ratio * width)))

    # ---- (de)serialisation -------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "name": self.name, "version": self.version, "overlay_version": self.overlay_version,
            "strip_ratio": self.strip_ratio, "max_speed": self.max_speed,
            "cells": [{"kind": c.kind, "name": c.name, "label": c.label, "box": list(c.box)} for c in self.cells],
        }

    @classmethod
    def from_dict(cls, d: dict, source: str = "") -> "Layout":
        where = source or "layout data"
        try:
            cells = tuple(Cell(kind=c["kind"], name=str(c["name"]) if c["kind"] != "mouse" else "mouse",
                               label=str(c.get("label", c.get("name", ""))),
                               box=tuple(float(v) for v in c["box"])) for c in d["cells"])
            if any(len(c.box) != 4 for c in cells):
                raise LayoutError(f"{where}: every cell box needs 4 numbers [x, y, w, h]")
            return cls(name=str(d["name"]), cells=cells, strip_ratio=float(d.get("strip_ratio", 0.25)),
                       max_speed=float(d.get("max_speed", 600.0)), version=int(d.get("version", 1)),
                       overlay_version=int(d.get("overlay_version", OVERLAY_VERSION)), source=source)
        except (KeyError, TypeError, AttributeError) as e:
            raise LayoutError(f"{where}: missing or malformed field {e}; see overlays/presets/arrows.json "
                              "for the format") from None
        except ValueError as e:
            if isinstance(e, LayoutError):
                raise
            raise LayoutError(f"{where}: a number field holds something else ({e}); cell boxes, strip_ratio "
                              "and max_speed are numbers, version and overlay_version whole numbers") from None

    @classmethod
    def from_file(cls, path: str | Path) -> "Layout":
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise LayoutError(f"layout file {path} does not exist; pass a JSON layout file or a preset "
                              f"name ({', '.join(PRESETS)})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise LayoutError(f"layout file {path} is not valid JSON ({e}); fix the file") from None
        except OSError as e:  # a folder, no permission, ...
            raise LayoutError(f"layout file {path} cannot be read ({e.strerror or type(e).__name__}); pass a JSON "
                              f"layout file or a preset name ({', '.join(PRESETS)})") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def preset(cls, name: str) -> "Layout":
        if name not in PRESETS:
            raise LayoutError(f"no layout preset named {name!r}; choose one of {', '.join(PRESETS)} "
                              "or pass a JSON file")
        text = resources.files("overlays").joinpath("presets", f"{name}.json").read_text()
        return cls.from_dict(json.loads(text), source=f"preset {name}")

    @classmethod
    def of_keys(cls, keys) -> "Layout":
        """A layout of just these keys, side by side in the order given (``keys:up,down``): the keys a
        game uses, so that the model and the agent see no key the game ignores. The same keys in the
        same order always give the same layout."""
        keys = [k.strip() for k in keys if k.strip()]
        if not keys:
            raise LayoutError("a layout of keys needs at least one key, e.g. keys:up,down")
        if len(keys) > 12:
            raise LayoutError(f"a layout of keys takes at most 12 keys, got {len(keys)}; use a layout file")
        gap = 0.02
        w = (1.0 - gap * (len(keys) + 1)) / len(keys)
        labels = {"left": "<", "right": ">", "up": "^", "down": "v", "space": "_"}
        cells = tuple(Cell("key", k, labels.get(k, k[:3]), (round(gap + i * (w + gap), 4), 0.1, round(w, 4), 0.8))
                      for i, k in enumerate(keys))
        return cls(name="keys:" + ",".join(keys), cells=cells, source=f"keys {','.join(keys)}")

    @classmethod
    def resolve(cls, name_or_path: str) -> "Layout":
        """A preset name, ``keys:K1,K2,...`` (``of_keys``), or a path to a JSON layout file."""
        if name_or_path in PRESETS:
            return cls.preset(name_or_path)
        if name_or_path and name_or_path.startswith("keys:"):
            return cls.of_keys(name_or_path[5:].split(","))
        if name_or_path and (name_or_path.endswith(".json") or Path(name_or_path).exists()):
            return cls.from_file(name_or_path)
        raise LayoutError(f"no layout preset named {name_or_path!r}; choose one of {', '.join(PRESETS)}, "
                          "keys:K1,K2 (e.g. keys:up,down) or pass a JSON file")

    def check_compatible(self, other: dict | "Layout", what: str = "the model") -> None:
        """Refuse a layout that differs from the one ``what`` was made with."""
        od = other.to_dict() if isinstance(other, Layout) else other
        mine = self.to_dict()
        if od.get("overlay_version") != mine["overlay_version"]:
            raise LayoutError(f"{what} was made with overlay version {od.get('overlay_version')} but this "
                              f"framepilot draws version {mine['overlay_version']}; use a matching release")
        if od.get("name") != mine["name"] or od.get("version") != mine["version"]:
            raise LayoutError(f"{what} was made with layout {od.get('name')!r} (version {od.get('version')}), "
                              f"not {mine['name']!r} (version {mine['version']}); pass --layout {od.get('name')}")
        if od.get("cells") != mine["cells"]:
            theirs = {(c.get("kind"), c.get("name")): c for c in od.get("cells") or ()}
            ours = {(c["kind"], c["name"]): c for c in mine["cells"]}
            diff = sorted({k for k in theirs.keys() ^ ours.keys()} |
                          {k for k in theirs.keys() & ours.keys() if theirs[k] != ours[k]}, key=str)
            named = ", ".join(f"{k} {n!r}" for k, n in diff[:3]) or "their order"
            raise LayoutError(f"{what} was made with layout {od.get('name')!r} (version {od.get('version')}) whose "
                              f"cells differ from this {mine['name']!r} layout{' in ' + self.source if self.source else ''} "
                              f"({named}); use the layout file the model was trained with")


def _overlap(a, b) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw - 1e-9 and bx < ax + aw - 1e-9 and ay < by + bh - 1e-9 and by < ay + ah - 1e-9
