"""Recording a person playing a real pygame window found by title, under a real Xvfb."""

import json
import threading
import time

import pytest

from controllers import WindowNotFoundError
from overlays import Layout


def test_record_human_writes_the_real_inputs_of_a_window(make_probe, human, tmp_path):
    pytest.importorskip("av")
    from framepilot.record import record_human
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
    from framepilot.record import record_human
    with pytest.raises(WindowNotFoundError, match="no visible window titled 'nope'"):
        record_human(tmp_path / "ep", Layout.preset("arrows"), window="nope", seconds=1.0)


@pytest.mark.parametrize("layout_name", ["arrows", "mouse", "wasd"])
def test_any_window_size_records_at_a_size_the_video_encoder_takes(layout_name):
    """A window of any size records (a 300x200 window once failed: the strip made the height odd);
    the stored frame is the capture trimmed by at most a pixel per side."""
    from controllers.human_recorder import check_size, recording_size
    layout = Layout.preset(layout_name)
    for height in range(16, 260, 7):
        for width in range(16, 420, 11):
            h, w = recording_size(height, width, layout)
            assert (h + layout.strip_height(w)) % 2 == 0 and w % 2 == 0
            assert abs(height - h) <= 2 and 0 <= width - w <= 1
            check_size((h, w), layout)  # accepted


def test_a_size_the_video_encoder_cannot_take_is_one_sentence_with_a_fix():
    from controllers.human_recorder import check_size
    from framepilot.errors import ConfigError
    with pytest.raises(ConfigError, match=r"--size 200,300 gives stored frames of 275x300 .* try --size 199,300"):
        check_size((200, 300), Layout.preset("arrows"))
