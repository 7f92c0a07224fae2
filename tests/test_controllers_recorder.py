"""Recording a person playing a real pygame window found by title, under a real Xvfb."""

import json
import threading
import time

import pytest

from controllers import WindowNotFoundError
from overlays import Layout


def test_record_human_writes_the_real_inputs_of_a_window(make_probe, human, tmp_path):
    pytest.importorskip("av")
    from controllers.human_recorder import record_human
    probe = make_probe("framepilot-recorded", pos=(100, 100), size=(160, 120))
    human.warp(*probe.center)

    def play():
        time.sleep(0.25)
        human.tap("Left", hold=0.3)
        human.tap("x", hold=0.1)  # not a layout key: never recorded

    player = threading.Thread(target=play)
    meta = record_human(tmp_path / "ep", Layout.preset("arrows"), window="framepilot-recorded", fps=10,
                        seconds=1.0, ready=player.start)
    player.join()
    assert meta["region"] == [100, 100, 160, 120] and meta["n_frames"] == 11
    steps = [json.loads(line) for line in (tmp_path / "ep" / "steps.jsonl").read_text().splitlines()]
    held = [s["action"]["keys"] for s in steps]
    assert held[0] == [] and sum(k == ["left"] for k in held) >= 3, held
    assert all(k in ([], ["left"]) for k in held)


def test_record_human_unknown_window_is_one_sentence(xvfb_display, tmp_path):
    from controllers.human_recorder import record_human
    with pytest.raises(WindowNotFoundError, match="no visible window titled 'nope'"):
        record_human(tmp_path / "ep", Layout.preset("arrows"), window="nope", seconds=1.0)
