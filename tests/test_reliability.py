"""Reliability (issue 18): the refusal list, layouts with non-finite numbers, atomic state and damaged
files named in one sentence, corpora with damaged episodes, and config values checked at the edge."""

from __future__ import annotations

import json
import math

import pytest

from controllers.safety import DANGEROUS_COMBOS, MEDIA_KEYS, SafetyConfig, screen_action
from framepilot.errors import LayoutError
from overlays import Action, Layout


# ---- refusals ---------------------------------------------------------------------------------------
def _key_layout(names):
    return Layout.from_dict({"name": "t", "cells": [
        {"kind": "key", "name": n, "box": [i / len(names), 0, 1 / len(names), 1]} for i, n in enumerate(names)]})


@pytest.mark.parametrize("combo", [
    ("ctrl_l", "esc"), ("ctrl_r", "shift", "esc"), ("ctrl_l", "c"), ("ctrl_l", "d"), ("ctrl_l", "z"),
    ("ctrl_l", "\\"), ("ctrl_l", "shift", "q"), ("ctrl_l", "shift_r", "w"), ("menu",), ("caps_lock",),
    ("num_lock",), ("scroll_lock",), ("print_screen",), ("pause",), *((k,) for k in MEDIA_KEYS),
])
def test_dangerous_combinations_are_refused(combo):
    layout = _key_layout(combo)
    cfg = SafetyConfig(status=lambda m: None)
    allowed, why = screen_action(Action(keys=set(combo)), layout, cfg)
    assert allowed.keys < set(combo), why  # at least one key of it was dropped
    assert why and all("can hurt the session" in w for w in why)
    # a modifier is kept, the key that completes the combination is dropped
    assert not {k for k in combo if k not in ("ctrl_l", "ctrl_r", "shift", "shift_r")} <= allowed.keys
    ok = SafetyConfig(allow_dangerous=True, status=lambda m: None)
    assert screen_action(Action(keys=set(combo)), layout, ok)[0].keys == set(combo)


def test_ordinary_keys_stay_allowed():
    layout = _key_layout(["ctrl_l", "shift", "a", "c", "esc", "space"])
    cfg = SafetyConfig(status=lambda m: None)
    for keys in ({"c"}, {"esc"}, {"shift", "c"}, {"ctrl_l", "a"}, {"ctrl_l", "space"}, {"shift", "esc"}):
        assert screen_action(Action(keys=keys), layout, cfg) == (Action(keys=keys), [])


def test_refusal_list_is_documented():
    """Every combination in DANGEROUS_COMBOS is named in the README's safety table."""
    from pathlib import Path
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    row = next(line for line in text.splitlines() if line.startswith("| refused combinations"))
    for name in ("ctrl+esc", "ctrl+shift+esc", "ctrl+c", "ctrl+d", "ctrl+z", "ctrl+\\", "ctrl+shift+q",
                 "ctrl+shift+w", "menu", "caps_lock", "num_lock", "scroll_lock", "print_screen", "pause", "media"):
        assert name in row, name
    assert len(DANGEROUS_COMBOS) == len(set(DANGEROUS_COMBOS))


# ---- layouts with non-finite numbers --------------------------------------------------------------
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", ["box", "strip_ratio", "max_speed"])
def test_layout_refuses_non_finite_numbers(tmp_path, where, bad):
    d = Layout.preset("arrows").to_dict()
    if where == "box":
        d["cells"][0]["box"][2] = bad
    else:
        d[where] = bad
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))  # NaN / Infinity: what json writes and reads back
    with pytest.raises(LayoutError, match="finite") as e:
        Layout.from_file(path)
    assert "\n" not in str(e.value) and str(path) in str(e.value)


def test_layout_number_that_is_text_names_the_file(tmp_path):
    d = Layout.preset("arrows").to_dict()
    d["cells"][0]["box"][0] = "a"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(LayoutError, match="bad.json") as e:
        Layout.from_file(path)
    assert "could not convert" in str(e.value) and "number" in str(e.value)


def test_layout_mismatch_says_what_differs():
    arrows = Layout.preset("arrows")
    d = arrows.to_dict()
    d["cells"][0]["box"] = [0.0, 0.0, 0.1, 0.5]
    moved = Layout.from_dict(d)
    with pytest.raises(LayoutError) as e:
        moved.check_compatible(arrows)
    msg = str(e.value)
    assert "cells differ" in msg and "'left'" in msg
    assert "not 'arrows' (version 1)" not in msg
