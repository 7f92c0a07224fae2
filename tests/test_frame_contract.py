"""The frame contract (``framepilot.frames.FrameSpec``): how frames are laid out in a recording, in the
corpus, in the checkpoint trained on it and in the frames the agent draws its overlay on. Unit tests of
the fit, then the whole chain through the command line on a real non-square window under Xvfb."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from framepilot.errors import ConfigError
from framepilot.frames import FittedCapture, FrameSpec
from overlays import Layout

ROOT = Path(__file__).resolve().parents[1]
ARROWS = Layout.preset("arrows")


def test_letterbox_keeps_proportions_and_stretch_fills():
    frame = np.full((200, 300, 3), 200, np.uint8)
    box = FrameSpec.of((128, 128), ARROWS, 10).fit_game(frame)
    assert box.shape == (128, 128, 3)
    rows = np.flatnonzero(box[:, 64, 0] > 100)
    assert rows[0] == 21 and rows[-1] == 105  # 300x200 -> 128x85, centred: black bars above and below
    assert (box[:21] == 0).all() and (box[106:] == 0).all() and (box[21:106] == 200).all()
    stretched = FrameSpec.of((128, 128), ARROWS, 10, fit="stretch").fit_game(frame)
    assert (stretched == 200).all()
    same = np.zeros((128, 128, 3), np.uint8)
    assert FrameSpec.of((128, 128), ARROWS, 10).fit_game(same) is same


def test_a_spec_round_trips_and_old_files_imply_theirs():
    spec = FrameSpec.of((210, 160), ARROWS, 15, fit="stretch")
    assert FrameSpec.from_meta({"frame_spec": spec.to_dict()}) == spec
    assert spec.frame_shape == (250, 160) and spec.strip_row((100, 64)) == 84
    old = FrameSpec.from_meta({"source_shape": [160, 128], "layout": ARROWS.to_dict(), "fps": 10.0})
    assert old.game_shape == (128, 128) and old.strip == 32 and old.strip_row((40, 32)) == 32
    assert FrameSpec.from_meta({}) is None
    with pytest.raises(ConfigError, match="letterbox or stretch"):
        FrameSpec.of((128, 128), ARROWS, 10, fit="crop")


def test_a_fitted_capture_gives_the_spec_and_moves_the_pointer_in_its_pixels():
    class Cap:
        size, downscale, rect = (300, 200), 1, "the region"

        def grab(self):
            return np.full((200, 300, 3), 9, np.uint8), 1.5

    cap = FittedCapture(Cap(), FrameSpec.of((128, 128), ARROWS, 10))
    frame, t = cap.grab()
    assert frame.shape == (128, 128, 3) and t == 1.5 and cap.size == (128, 128) and cap.rect == "the region"
    assert cap.downscale == pytest.approx(300 / 128)  # screen pixels per game-area pixel


def test_shipped_checkpoints_state_the_frames_they_take_and_screen_brings_captures_to_them():
    from framepilot.play import fitted
    from planner.backends.bundled import BundledWorldModel
    m = BundledWorldModel("arrows")
    assert m.frame_spec.game_shape == (128, 128) and m.frame_spec.layout == "arrows"

    class Cap:
        size = (300, 200)

        def grab(self):
            return np.zeros((200, 300, 3), np.uint8), 0.0

    assert fitted(Cap(), m).grab()[0].shape == (128, 128, 3)
    raw = Cap()
    assert fitted(raw, object()) is raw  # a model that states no contract gets the capture as it is


def test_a_corpus_of_two_frame_layouts_is_refused(tmp_path):
    from training.corpus import EpisodeWriter
    from training.train import build_data
    for name, shape in (("a", (160, 128)), ("b", (190, 160))):
        meta = {"game": "screen", "fps": 10.0, "layout": ARROWS.to_dict(), "source": "screen"}
        with EpisodeWriter(tmp_path / name, meta) as w:
            for k in range(3):
                w.add(np.zeros((*shape, 3), np.uint8), __import__("overlays").NOOP, k / 10)
    with pytest.raises(ConfigError, match="mixes frame layouts.*record every episode at one --size"):
        build_data(str(tmp_path), (40, 32), None, progress=False)


# ---- the chain through the command line, on a real window ----------------------------------------------
def _cli(*args, timeout=240, env=None):
    p = subprocess.run([sys.executable, str(ROOT / "run_agent.py"), *args], capture_output=True, text=True,
                       cwd=ROOT, timeout=timeout, env=env)
    return p


@pytest.mark.slow
def test_record_train_and_screen_a_non_square_window_through_the_cli(make_probe, human, tmp_path):
    """20 s of a 300x200 window recorded at the shipped model's game area (letterboxed), a few training
    steps from bundled:arrows, then ``screen --dry-run`` on the same window with the new checkpoint: every
    stage takes the frames the one before wrote, and says so in its files."""
    pytest.importorskip("av")
    probe = make_probe("framepilot-contract", pos=(200, 150), size=(300, 200))
    human.warp(*probe.center)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    corpus, run = tmp_path / "corpus", tmp_path / "run"

    # 1. record 20 s, a player pressing arrows now and then
    stop = threading.Event()

    def play():
        time.sleep(2.0)
        for key in ("Left", "Right", "Up", "Down") * 6:
            if stop.is_set():
                return
            human.tap(key, hold=0.3)
            time.sleep(0.4)

    player = threading.Thread(target=play, daemon=True)
    player.start()
    rec = _cli("record", "--screen", "--window", "framepilot-contract", "--seconds", "20", "--size", "128,128",
               "--out", str(corpus / "ep_0"), env=env)
    stop.set()
    player.join()
    assert rec.returncode == 0, rec.stderr[-2000:]
    meta = json.loads((corpus / "ep_0" / "meta.json").read_text())
    assert meta["frame_spec"] == {"height": 128, "width": 128, "layout": "arrows", "strip": 32, "fps": 10.0,
                                  "fit": "letterbox"}
    assert meta["frame_shape"] == [160, 128, 3] and meta["n_frames"] >= 190
    keys = {k for line in (corpus / "ep_0" / "steps.jsonl").read_text().splitlines()
            for k in json.loads(line)["action"]["keys"]}
    assert {"left", "right"} <= keys

    # 2. fine-tune a few steps from the shipped model: the corpus's spec is the checkpoint's
    tr = _cli("train", "--corpus", str(corpus), "--init-from", "bundled:arrows", "--steps", "3", "--batch", "2",
              "--strip-batch", "4", "--save-every", "3", "--threads", "1", "--out", str(run), env=env)
    assert tr.returncode == 0, tr.stderr[-2000:]
    ck = json.loads((run / "framepilot.json").read_text())
    assert ck["frame_spec"] == meta["frame_spec"]

    # 3. the agent on the window with it, sending nothing
    sc = _cli("screen", "--window", "framepilot-contract", "--model", str(run), "--dry-run", "--max-seconds", "4",
              "--rollouts", "2", "--countdown", "0", "--quiet", "--out", str(tmp_path / "runs"), env=env)
    assert sc.returncode == 0, sc.stderr[-2000:]
    summary = json.loads(sc.stdout[sc.stdout.index("{"):])
    assert summary["steps"] >= 3
    assert (Path(summary["recording"]) / "decisions.jsonl").read_text().count("\n") == summary["steps"]


@pytest.mark.slow
def test_a_recording_at_another_size_says_what_to_record_at(make_probe, human, tmp_path):
    pytest.importorskip("av")
    probe = make_probe("framepilot-contract2", pos=(200, 150), size=(300, 200))
    human.warp(*probe.center)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rec = _cli("record", "--screen", "--window", "framepilot-contract2", "--seconds", "1",
               "--out", str(tmp_path / "c" / "ep_0"), env=env)
    assert rec.returncode == 0, rec.stderr[-2000:]
    tr = _cli("train", "--corpus", str(tmp_path / "c"), "--init-from", "bundled:arrows", "--steps", "1",
              "--out", str(tmp_path / "run"), env=env)
    assert tr.returncode == 2
    assert "--size 128,128" in tr.stderr and "Traceback" not in tr.stderr, tr.stderr[-2000:]
