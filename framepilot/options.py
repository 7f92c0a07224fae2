"""The ranges of the command line's options, checked in one place before anything loads.

Each option has a kind (a whole number, a finite number, text or a switch), a range and, where a
value could make a run hang or exhaust memory, a documented cap (docs/reference.md, "Limits of the
options", lists them). ``check_options(config)`` checks every field of a config dataclass
that is named here and raises ``ConfigError`` with one sentence naming the option, the value and
the range. The same table types the values of a ``--config`` TOML file (``config_value``), so a
list or a string where a number belongs names the file and the key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from framepilot.errors import ConfigError

#: caps that keep one run bounded (documented in docs/reference.md#limits-of-the-options)
MAX_ROLLOUTS = 1024
MAX_DENOISE_STEPS = 1000
MAX_SEED = 2 ** 32 - 1
MAX_DECISION_INTERVAL = 10.0
MAX_GOAL_PIXELS = 4096 * 4096  # a goal image is a screenshot; larger ones are refused before decoding


@dataclass(frozen=True)
class Spec:
    kind: str  # "int", "float", "str", "bool"
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # lo itself is refused
    none: bool = False  # None (unset) allowed

    def describe(self) -> str:
        what = {"int": "a whole number", "float": "a finite number", "str": "text", "bool": "true or false"}[self.kind]
        if self.lo is not None and self.hi is not None:
            what += f" {'above' if self.lo_open else 'from'} {_g(self.lo)} {'up ' if self.lo_open else ''}to {_g(self.hi)}"
        elif self.lo is not None:
            what += f" {'above' if self.lo_open else 'of at least'} {_g(self.lo)}"
        return what


def _g(v: float) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


OPTIONS: dict[str, Spec] = {
    # planning (play, screen)
    "rollouts": Spec("int", 1, MAX_ROLLOUTS),
    "decision_horizon": Spec("float", 0.0, 10.0, lo_open=True, none=True),
    "rollout_length": Spec("float", 0.0, 60.0, lo_open=True, none=True),
    "denoise_steps": Spec("int", 1, MAX_DENOISE_STEPS, none=True),
    "frame_steps": Spec("int", 1, MAX_DENOISE_STEPS, none=True),
    "goal_offset": Spec("float", 0.0, 60.0, lo_open=True),
    "abstain_below": Spec("float", 0.0, 1.0),
    "seed": Spec("int", 0, MAX_SEED),
    "max_steps": Spec("int", 1, 10 ** 9, none=True),
    "model": Spec("str"), "out": Spec("str"), "prompt": Spec("str", none=True), "goal": Spec("str", none=True),
    "vote": Spec("str"), "goal_mode": Spec("str"), "plan": Spec("str"),
    "search_horizon": Spec("int", 1, 64), "search_rounds": Spec("int", 0, 16), "search_top_k": Spec("int", 1, MAX_ROLLOUTS),
    "search_novelty": Spec("float", 0, 100),
    "record": Spec("bool"), "gif": Spec("bool"), "quiet": Spec("bool"),
    # play
    "game": Spec("str"), "mode": Spec("str"), "real_window": Spec("bool"),
    "scale": Spec("int", 1, 16), "episodes": Spec("int", 1, 100_000),
    # screen
    "region": Spec("str", none=True), "window": Spec("str", none=True), "layout": Spec("str", none=True),
    "dry_run": Spec("bool"), "mouse_scale": Spec("float", 0.0, 100.0, lo_open=True),
    "decision_interval": Spec("float", 0.0, MAX_DECISION_INTERVAL, lo_open=True),
    "deadline": Spec("float", 0.0, 60.0, lo_open=True),
    "max_seconds": Spec("float", 0.0, 1e7, lo_open=True, none=True),
    "stop_key": Spec("str"), "pause_key": Spec("str"), "countdown": Spec("float", 0.0, 60.0),
    "no_focus_guard": Spec("bool"), "no_corner_failsafe": Spec("bool"), "allow_dangerous": Spec("bool"),
    # bench
    "decisions": Spec("int", 1, 100_000), "no_success": Spec("bool"), "json": Spec("str"), "plot": Spec("str", none=True),
}

#: options whose value is a comma-separated list of whole numbers, with the range of each
LISTS: dict[tuple[str, str], Spec] = {
    ("bench", "rollouts"): Spec("int", 1, MAX_ROLLOUTS),
    ("bench", "denoise_steps"): Spec("int", 1, MAX_DENOISE_STEPS),
}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _ok(spec: Spec, v) -> bool:
    if v is None:
        return spec.none
    if spec.kind == "bool":
        return isinstance(v, bool)
    if spec.kind == "str":
        return isinstance(v, str) and "\x00" not in v
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    if spec.kind == "int" and not isinstance(v, int):
        return False
    if not math.isfinite(v):
        return False
    if spec.lo is not None and (v <= spec.lo if spec.lo_open else v < spec.lo):
        return False
    return spec.hi is None or v <= spec.hi


def check_value(name: str, v, spec: Spec | None = None) -> None:
    spec = spec or OPTIONS[name]
    if not _ok(spec, v):
        raise ConfigError(f"{flag(name)} must be {spec.describe()}, got {v!r}")


def parse_int_list(name: str, text, spec: Spec) -> list[int]:
    """``"1,2,4"`` as ``[1, 2, 4]``, each in ``spec``'s range; one sentence otherwise."""
    try:
        vals = [int(v) for v in str(text).split(",")]
    except ValueError:
        raise ConfigError(f"{flag(name)} takes comma-separated whole numbers such as 1,2,4, got {text!r}") from None
    for v in vals:
        if not _ok(spec, v):
            raise ConfigError(f"{flag(name)}: each value must be {spec.describe()}, got {v}")
    return vals


def check_options(config, command: str | None = None) -> None:
    """Check every field of the dataclass instance ``config`` that ``OPTIONS`` names."""
    for f in fields(config):
        v = getattr(config, f.name)
        if command and (command, f.name) in LISTS:
            parse_int_list(f.name, v, LISTS[command, f.name])
        elif f.name in OPTIONS:
            check_value(f.name, v)
    for name in ("out", "json"):
        v = getattr(config, name, None)
        if isinstance(v, str) and not v.strip():
            raise ConfigError(f"{flag(name)} must be a path, got an empty string")
    if getattr(config, "stop_key", None) is not None and config.stop_key == getattr(config, "pause_key", None):
        raise ConfigError(f"--stop-key and --pause-key are both {config.stop_key!r}: choose two different keys")
    for name in ("stop_key", "pause_key"):
        v = getattr(config, name, None)
        if v is not None:
            from overlays.layout import is_valid_key_name
            if not is_valid_key_name(v):
                raise ConfigError(f"{flag(name)} {v!r} is not a key name: use a pynput Key name such as f12, "
                                  "or a single character")
