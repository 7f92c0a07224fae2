"""Overlay codec: exact round trips, robustness to the damage video models do, clear errors."""

import io
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFilter

from overlays import (
    PRESETS,
    Action,
    Layout,
    LayoutError,
    draw_sticky_note,
    read_overlay,
    render_overlay,
)

N_ACTIONS = 500  # per preset and perturbation: 1,000-4,500 key and button readings each


def random_action(layout, rng):
    keys = frozenset(k for k in layout.keys if rng.random() < 0.5)
    buttons = frozenset(b for b in layout.buttons if rng.random() < 0.5)
    mouse = (0.0, 0.0)
    if layout.has_mouse and rng.random() < 0.85:
        ang, sp = rng.uniform(0, 2 * np.pi), rng.uniform(0, 1.2) * layout.max_speed
        mouse = (sp * np.cos(ang), sp * np.sin(ang))
    return Action(keys=keys, mouse=mouse, buttons=buttons)


def drawn_velocity(action, layout):
    """The velocity the overlay can show: clipped at the layout's max speed."""
    v = np.array(action.mouse)
    n = np.hypot(*v)
    return v * (min(n, layout.max_speed) / n) if n > 0 else v


def perturb(img, kind, rng):
    if kind == "clean":
        return img
    if kind == "noise":  # sigma 0.1 of full scale
        return np.clip(img + rng.normal(0, 25.5, img.shape), 0, 255).astype(np.uint8)
    if kind == "blur":
        return np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(1.5)))
    if kind == "jpeg":
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, "JPEG", quality=40)
        return np.asarray(Image.open(buf).convert("RGB"))
    if kind == "quarter":
        h, w = img.shape[:2]
        small = Image.fromarray(img).resize((w // 4, h // 4), Image.BILINEAR)
        return np.asarray(small.resize((w, h), Image.BILINEAR))
    if kind == "shift":
        return np.roll(img, (2, 2), axis=(0, 1))
    raise ValueError(kind)


@pytest.mark.parametrize("preset", PRESETS)
@pytest.mark.parametrize("kind", ["clean", *(pytest.param(k, marks=pytest.mark.slow)
                                             for k in ("noise", "blur", "jpeg", "quarter", "shift"))])
def test_round_trip_robustness(preset, kind):
    layout = Layout.preset(preset)
    rng = np.random.default_rng(1234)
    wrong = total = 0
    worst_mouse = 0.0
    for _ in range(N_ACTIONS):
        action = random_action(layout, rng)
        frame = rng.integers(0, 256, (192, 256, 3), dtype=np.uint8)
        reading = read_overlay(perturb(render_overlay(frame, action, layout), kind, rng), layout)
        wrong += len(reading.action.keys ^ action.keys) + len(reading.action.buttons ^ action.buttons)
        total += len(layout.keys) + len(layout.buttons)
        err = np.hypot(*(np.array(reading.action.mouse) - drawn_velocity(action, layout))) / layout.max_speed
        worst_mouse = max(worst_mouse, err)
    if kind == "clean":
        assert wrong == 0
        assert worst_mouse <= 0.02
    else:
        assert wrong / total <= 0.005
        assert worst_mouse <= 0.10


@settings(max_examples=60, deadline=None, derandomize=True)  # the same examples on every run (CI included)
@given(preset=st.sampled_from(PRESETS), width=st.integers(96, 640), height=st.integers(8, 400),
       seed=st.integers(0, 2**31 - 1), placement=st.sampled_from(["strip", "bottom-right", "top-left"]))
def test_property_round_trip_any_size(preset, width, height, seed, placement):
    layout = Layout.preset(preset)
    rng = np.random.default_rng(seed)
    action = random_action(layout, rng)
    if placement != "strip":
        width = max(width, 200)  # a corner panel is 0.4 of the width: keep its mouse pad >= 16 px
        height = max(height, layout.strip_height(int(width * 0.4)) + 1)
    frame = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    out = render_overlay(frame, action, layout, placement=placement)
    assert out.shape == ((height + layout.strip_height(width)) if placement == "strip" else height, width, 3)
    reading = read_overlay(out, layout, placement=placement)
    assert reading.action.keys == action.keys
    assert reading.action.buttons == action.buttons
    assert reading.confidence > 0.9
    panel_w = int(width * 0.4) if placement != "strip" else width
    pads = [c for c in layout.cells if c.kind == "mouse"]
    # the pad's shorter side in pixels (a short, wide strip makes a short pad)
    pad_px = min(min(c.box[2] * panel_w, c.box[3] * layout.strip_height(panel_w)) for c in pads) if pads else 100.0
    # a small pad holds only a few pixels of arrow: precision falls with its size
    tol = 0.02 if pad_px >= 40 else 0.06 if pad_px >= 24 else 0.25  # 16 px pads: 0.197 and 0.201 seen (desktop, corner)
    err = np.hypot(*(np.array(reading.action.mouse) - drawn_velocity(action, layout))) / layout.max_speed
    assert err <= tol


def test_rescaled_non_uniformly_with_source_shape():
    layout = Layout.preset("arrows")
    frame = np.zeros((120, 160, 3), np.uint8)
    out = render_overlay(frame, Action(keys={"left", "space"}), layout)
    squashed = np.asarray(Image.fromarray(out).resize((64, 80), Image.BILINEAR))
    reading = read_overlay(squashed, layout, source_shape=(120, 160))
    assert reading.action.keys == {"left", "space"}
    assert reading.key_probs["left"] > 0.9 and reading.key_probs["up"] < 0.1


def test_probabilities_and_confidence_track_ambiguity():
    layout = Layout.preset("arrows")
    out = render_overlay(np.zeros((64, 64, 3), np.uint8), Action(keys={"up"}), layout)
    assert read_overlay(out, layout).confidence > 0.95
    grey = out.copy()
    grey[64:] = 128  # an imagined strip that is neither black nor white
    r = read_overlay(grey, layout)
    assert r.confidence < 0.1
    assert all(0.4 < p < 0.6 for p in r.key_probs.values())


def test_looks_like_keys_white_unpressed_black_held():
    layout = Layout.preset("arrows")
    out = render_overlay(np.zeros((100, 200, 3), np.uint8), Action(keys={"right"}), layout)
    assert out.shape == (150, 200, 3)
    strip = out[100:]
    right = next(c for c in layout.cells if c.name == "right")
    left = next(c for c in layout.cells if c.name == "left")
    cx = lambda c: int((c.box[0] + c.box[2] / 2) * 200)
    assert strip[40, cx(right)].max() == 0      # held: black
    assert strip[40, cx(left)].min() == 255     # unpressed: white
    assert (strip[5:17, int(left.box[0] * 200):int((left.box[0] + left.box[2]) * 200)] < 100).any()  # dark label


def test_sticky_note_hides_no_cell():
    layout = Layout.preset("desktop")
    frame = np.full((180, 256, 3), 30, np.uint8)
    action = Action(keys={"enter"}, mouse=(300, -200), buttons={"left"})
    for placement in ["strip", "top-left", "bottom-right"]:
        framed = render_overlay(frame, action, layout, placement=placement)
        noted = draw_sticky_note(framed, "click Save", layout, placement=placement)
        assert (noted != framed).any()
        before, after = read_overlay(framed, layout, placement=placement), read_overlay(noted, layout, placement=placement)
        assert after.action == before.action
        assert after.key_probs == before.key_probs
    with pytest.raises(ValueError, match="at most 40 characters"):
        draw_sticky_note(frame, "x" * 41)


def test_layout_json_round_trip_and_version(tmp_path):
    layout = Layout.preset("wasd")
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(layout.to_dict()))
    again = Layout.from_file(path)
    assert again == layout and again.to_dict()["overlay_version"] == 1
    layout.check_compatible(again.to_dict())
    with pytest.raises(LayoutError, match="made with layout 'arrows'"):
        layout.check_compatible(Layout.preset("arrows"))
    old = dict(layout.to_dict(), overlay_version=0)
    with pytest.raises(LayoutError, match="overlay version 0"):
        layout.check_compatible(old)


@pytest.mark.parametrize("mutate,message", [
    (lambda d: d["cells"][0].update(name="lefty"), "unknown key 'lefty'.*pynput Key name"),
    (lambda d: d["cells"][1].update(box=d["cells"][0]["box"]), "overlap"),
    (lambda d: d["cells"][0].update(box=[0.9, 0.1, 0.3, 0.8]), "outside the strip"),
    (lambda d: d["cells"].append(dict(d["cells"][0])), "appears twice"),
    (lambda d: d["cells"][0].pop("box"), "missing or malformed field"),
])
def test_bad_layouts_get_one_sentence(tmp_path, mutate, message):
    d = Layout.preset("arrows").to_dict()
    mutate(d)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(d))
    with pytest.raises(LayoutError, match=message) as e:
        Layout.from_file(path)
    assert "\n" not in str(e.value)


def test_bad_input_errors():
    with pytest.raises(LayoutError, match="no layout preset named 'qwerty'; choose one of arrows"):
        Layout.preset("qwerty")
    with pytest.raises(LayoutError, match="is not valid JSON"):
        p = __import__("pathlib").Path(__import__("tempfile").mkdtemp()) / "x.json"
        p.write_text("{nope")
        Layout.from_file(p)
    layout = Layout.preset("arrows")
    with pytest.raises(ValueError, match="uint8"):
        render_overlay(np.zeros((10, 64, 3), np.float32), Action(), layout)
    with pytest.raises(ValueError, match=r"shape \(H, W, 3\)"):
        render_overlay(np.zeros((10, 64), np.uint8), Action(), layout)
    with pytest.raises(LayoutError, match="not in layout 'arrows'"):
        render_overlay(np.zeros((10, 64, 3), np.uint8), Action(keys={"w"}), layout)
    with pytest.raises(ValueError, match="unknown mouse button"):
        Action(buttons={"side"})
