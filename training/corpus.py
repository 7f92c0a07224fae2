"""The on-disk episode format, the scripted recorder and the corpus loader.

A corpus is a folder of episode folders (nested folders are fine: ``corpus/reach/ep_0/``). One
episode folder ``ep_<seed>/`` holds:

- ``frames.mkv``: the frames WITH the overlay drawn (``overlays.render_overlay``, strip placement,
  so (128 + 32, 128, 3) for the bundled games), RGB, lossless FFV1 (pixel format bgr0) in
  Matroska, written with PyAV at the episode's fps. Decoding gives the written pixels bit-exact.
  Each frame reaches the file as it is added (a cluster per frame), so a killed recording keeps
  its frames; ``load_corpus`` checks their count against ``meta.json`` and skips an episode that
  does not match (or is damaged, or has 0 frames) with a ``warning:`` line naming it.
- ``steps.jsonl``: one JSON line per frame, written and flushed as the frame is added:
  ``{"index": k, "t": seconds since frame 0, "action": Action.to_dict()}``. The action is the one
  held during the interval that ENDS at frame k (the one its overlay shows; frame 0 holds a
  no-op). Actions are for evaluation only; a world model never reads them.
- ``meta.json``: written (atomically) when the episode is closed, so an episode without it is unfinished:
  ``format_version``, ``game``, ``seed``, ``prompt`` (str or null), ``fps``, ``layout``
  (``Layout.to_dict()``), ``overlay_version``, ``frame_shape`` ([H, W, 3] with the overlay),
  ``n_frames``, ``success`` (bool), ``steps`` (env steps taken), ``has_goal``, and for scripted
  episodes ``noise``, ``split``, ``initial_state`` and ``final_state`` (the game's ``info["state"]``),
  and ``run_to_cap: true`` for a game recorded to its step cap whatever happened (``maze``: ``success``
  then says the goal was reached at some step), and for mouse games ``click_margin`` (``games.demonstrators``; absent in episodes recorded before
  it existed, which clicked with margin 0). ``interrupted: true`` marks an episode closed by an exception (its frames are still valid).
- ``meta.partial.json``: the metadata known at the start, written when the episode is opened and
  removed when ``meta.json`` is written; ``finish_episode`` uses it to close an episode whose
  recording was killed.
- ``goal.png``: only when the episode has a goal frame (``reach-goal``): the goal frame with the
  overlay drawn for a no-op action, RGB PNG, same shape as the frames.

Timing convention of scripted recordings: frame 0 is the ``reset`` observation with a no-op
overlay; frame k (k >= 1) is the observation after step k with the overlay of the action executed
during step k; ``t = k / fps``.

Example::

    python -m training.corpus coins 200 corpus/coins          # record 200 demonstrator episodes
    python -m training.corpus reach 50 corpus/reach --seed0 1000 --noise 0.2
    python -m training.corpus screen corpus/mygame/ep_0 --region 0,0,640,480 --layout arrows --size 128,160

``python -m training.corpus finish corpus/mygame/ep_0`` closes an unfinished episode (a recording
killed before it could write ``meta.json``): its readable frames become a finished episode marked
``interrupted`` (``finish_episode``).

The ``screen`` form records a person playing any region of the real screen (``framepilot.record.record_human``):
mss grabs the region, a pynput listener hears the layout's keys and mouse buttons, the same
overlay is drawn from those real inputs, and the same episode format is written (``seed`` null,
``success`` null, ``source`` "screen", ``region``); Esc stops it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from framepilot.atomic import atomic_path, atomic_write
from framepilot.errors import ConfigError, CorpusError
from framepilot.frames import resize_frames
from overlays import NOOP, OVERLAY_VERSION, Action, Layout, render_overlay

FORMAT_VERSION = 1
VIDEO_FILE, STEPS_FILE, META_FILE, GOAL_FILE = "frames.mkv", "steps.jsonl", "meta.json", "goal.png"
PARTIAL_FILE = "meta.partial.json"  # the metadata known at the start, until meta.json replaces it


class EpisodeExists(CorpusError, FileExistsError):
    """The episode folder to record into already holds an episode (finished or not)."""


def refuse_existing_episode(folder: str | Path) -> None:
    """Raise ``EpisodeExists`` when ``folder`` holds an episode, finished or not (nothing is deleted)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise EpisodeExists(f"{folder} is a file, not an episode folder; record into another folder")
    present = [n for n in (META_FILE, VIDEO_FILE, STEPS_FILE, GOAL_FILE, PARTIAL_FILE) if (folder / n).exists()]
    if META_FILE in present:
        raise EpisodeExists(f"{folder} already holds a finished episode; pass --overwrite to replace it, or record "
                            "into another folder")
    if present:
        raise EpisodeExists(f"{folder} already holds an unfinished episode ({', '.join(present)}); keep its frames "
                            f"with python -m training.corpus finish {folder}, pass --overwrite to replace it, or "
                            "record into another folder")


def _check_frame(frame: np.ndarray, what: str) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise CorpusError(f"{what} must be an (H, W, 3) uint8 array, got "
                         f"{getattr(frame, 'dtype', type(frame).__name__)} {getattr(frame, 'shape', '')}")
    if frame.shape[0] % 2 or frame.shape[1] % 2:
        raise CorpusError(f"{what} has shape {frame.shape}; height and width must be even for the video encoder")


class EpisodeWriter:
    """Write one episode folder, a frame at a time.

    Args:
        out_dir: the episode folder itself (created).
        meta: episode metadata (``game``, ``seed``, ``prompt``, ``fps``, ``layout``, ...); ``fps``
            is required. ``close`` adds ``n_frames``, ``frame_shape`` and ``format_version``.
        goal: optional (H, W, 3) uint8 goal frame, overlay already drawn; saved as ``goal.png``.
        overwrite: replace an episode (finished or not) already in ``out_dir``; without it such a
            folder is refused (``EpisodeExists``) and nothing is deleted.

    Frames reach the file as they are added (see ``_open_video``), so a recording killed at any
    moment keeps the frames added before it: ``read_frames`` reads them from the unfinished folder.
    """

    def __init__(self, out_dir: str | Path, meta: dict, goal: np.ndarray | None = None, overwrite: bool = False):
        try:
            fps = float(meta["fps"])
        except (KeyError, TypeError, ValueError):
            fps = float("nan")
        if not (math.isfinite(fps) and fps > 0):
            raise CorpusError("meta needs a positive 'fps' entry, the frame rate of the episode")
        self.dir = Path(out_dir)
        if not overwrite:
            refuse_existing_episode(self.dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        for name in (META_FILE, VIDEO_FILE, STEPS_FILE, GOAL_FILE, PARTIAL_FILE):  # meta first: never a finished-looking half
            (self.dir / name).unlink(missing_ok=True)
        self.meta = dict(meta)
        self.meta["has_goal"] = goal is not None
        # what finish_episode needs to close this episode if the process dies before close()
        atomic_write(self.dir / PARTIAL_FILE, json.dumps(self.meta, indent=1, default=str), fsync=False)
        if goal is not None:
            _check_frame(goal, "goal frame")
            from PIL import Image
            with atomic_path(self.dir / GOAL_FILE) as tmp:
                Image.fromarray(goal).save(tmp, format="PNG")
        self._steps = open(self.dir / STEPS_FILE, "w")
        self._container = None
        self._stream = None
        self.shape: tuple[int, int, int] | None = None
        self.n_frames = 0
        self.closed = False

    def add(self, frame: np.ndarray, action: Action, t: float) -> None:
        """Append a frame.

        Args:
            frame: (H, W, 3) uint8, overlay already drawn; every frame of an episode has one shape.
            action: the action held during the interval that ends at this frame.
            t: seconds since the episode's first frame.
        """
        if self.closed:
            raise RuntimeError("this EpisodeWriter is closed; open a new one for the next episode")
        _check_frame(frame, "frame")
        if self.shape is None:
            self._open_video(frame.shape)
        elif frame.shape != self.shape:
            raise CorpusError(f"frame shape {frame.shape} differs from the episode's {self.shape}; "
                             "keep one frame size per episode")
        import av
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        for packet in self._stream.encode(vf):
            self._container.mux(packet)
        line = {"index": self.n_frames, "t": round(float(t), 6), "action": action.to_dict()}
        self._steps.write(json.dumps(line) + "\n")
        self._steps.flush()
        self.n_frames += 1

    def _open_video(self, shape: tuple[int, int, int]) -> None:
        from fractions import Fraction

        import av
        self.shape = tuple(shape)
        # every frame reaches the file as it is added: a Matroska cluster per frame and no muxer or
        # encoder buffering, so a kill (even -9) keeps every frame added before it, readable
        self._container = av.open(str(self.dir / VIDEO_FILE), "w", format="matroska",
                                  options={"cluster_time_limit": "0", "cluster_size_limit": "0", "flush_packets": "1"})
        fps = Fraction(float(self.meta["fps"])).limit_denominator(1000)
        self._stream = self._container.add_stream("ffv1", rate=fps)
        self._stream.width, self._stream.height = shape[1], shape[0]
        self._stream.pix_fmt = "bgr0"  # lossless RGB in FFV1
        self._stream.thread_type = "NONE"  # no frame threads: no frames held back in the encoder

    def close(self, **updates) -> None:
        """Finish the video and write ``meta.json`` (``updates`` are merged into the metadata)."""
        if self.closed:
            return
        self.closed = True
        if self._container is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
        self._steps.close()
        self.meta.update(updates)
        self.meta.update(format_version=FORMAT_VERSION, n_frames=self.n_frames,
                         frame_shape=list(self.shape) if self.shape else None)
        atomic_write(self.dir / META_FILE, json.dumps(self.meta, indent=1))
        (self.dir / PARTIAL_FILE).unlink(missing_ok=True)

    def __enter__(self) -> "EpisodeWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.close(interrupted=True)


@dataclass
class Episode:
    """One recorded episode.

    Args:
        frames: (T, H, W, 3) uint8 with the overlay drawn.
        actions: T actions; ``actions[k]`` is held during the interval that ends at frame k.
        meta: the contents of ``meta.json``.
        goal: (H, W, 3) uint8 goal frame with a no-op overlay, or None.
    """

    frames: np.ndarray
    actions: list[Action]
    meta: dict
    goal: np.ndarray | None


def read_meta(path: str | Path) -> dict:
    path = Path(path)
    try:
        meta = json.loads((path / META_FILE).read_text())
    except FileNotFoundError:
        raise CorpusError(f"{path} is not a finished episode (no {META_FILE}); re-record it") from None
    except (ValueError, UnicodeDecodeError) as e:
        why = "empty" if not (path / META_FILE).read_bytes().strip() else getattr(e, "msg", type(e).__name__)
        raise CorpusError(f"{path / META_FILE} is damaged ({why}); re-record the episode or delete its folder") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("n_frames"), int) or "fps" not in meta:
        raise CorpusError(f"{path / META_FILE} is damaged (no n_frames or fps); re-record the episode or "
                          "delete its folder")
    return meta


def read_frames(path: str | Path) -> np.ndarray:
    """The frames of the episode folder ``path``, (T, H, W, 3) uint8 (also of an unfinished one: a
    recording that was killed keeps the frames written before it)."""
    import av
    video = Path(path) / VIDEO_FILE
    if not video.is_file():
        raise CorpusError(f"{path} has no {VIDEO_FILE}; re-record it")
    frames = []
    try:
        # a tiny probe and no decoder threads: 3x faster on these short, small videos
        with av.open(str(video), format="matroska", options={"probesize": "32", "analyzeduration": "0"}) as c:
            stream = c.streams.video[0]
            stream.thread_type = "NONE"
            for f in c.decode(stream):
                frames.append(f.to_ndarray(format="rgb24"))
    except (av.error.FFmpegError, OSError, ValueError, IndexError) as e:
        if not frames:
            raise CorpusError(f"{video} cannot be decoded ({type(e).__name__}); re-record it") from None
        # a cut-off file: the frames before the cut are intact (the caller checks the count)
    if not frames:
        raise CorpusError(f"{path} has no frames; re-record it")
    return np.stack(frames)


def read_checked_frames(path: str | Path, meta: dict) -> np.ndarray:
    """``read_frames``, refused unless the video holds exactly the ``n_frames`` its meta says."""
    frames = read_frames(path)
    if len(frames) != meta["n_frames"]:
        raise CorpusError(f"{Path(path) / VIDEO_FILE} holds {len(frames)} frames but {META_FILE} says "
                          f"{meta['n_frames']} (a truncated or replaced video); re-record it")
    return frames


def read_episode(path: str | Path) -> Episode:
    """Read the episode folder ``path`` (see the module docstring for the format)."""
    path = Path(path)
    meta = read_meta(path)
    frames = read_frames(path)
    with open(path / STEPS_FILE) as f:
        actions = [Action.from_dict(json.loads(line)["action"]) for line in f if line.strip()]
    if len(frames) != meta["n_frames"] or len(actions) != meta["n_frames"]:
        raise CorpusError(f"{path} is damaged: {len(frames)} frames and {len(actions)} steps but meta says "
                         f"{meta['n_frames']}; re-record it")
    goal = None
    if (path / GOAL_FILE).exists():
        from PIL import Image
        goal = np.asarray(Image.open(path / GOAL_FILE).convert("RGB"))
    return Episode(frames=frames, actions=actions, meta=meta, goal=goal)


def finish_episode(path: str | Path) -> dict:
    """Close the unfinished episode in ``path`` (a recording killed before ``close``): its readable
    frames and their steps become a finished episode marked ``interrupted``; returns its meta.

    The frames are written again (a video cut mid-frame cannot be closed in place) to a folder
    beside it, which then replaces the episode's files; nothing is lost if this is killed too."""
    import shutil
    path = Path(path)
    if (path / META_FILE).exists():
        raise CorpusError(f"{path} is a finished episode already; nothing to do")
    try:
        meta = json.loads((path / PARTIAL_FILE).read_text())
    except (OSError, ValueError):
        raise CorpusError(f"{path} has no readable {PARTIAL_FILE} (recorded before this framepilot, or not an "
                          "episode); its frames can still be read with training.corpus.read_frames") from None
    frames = read_frames(path)
    actions = []
    try:
        with open(path / STEPS_FILE) as f:
            for line in f:
                try:
                    actions.append(Action.from_dict(json.loads(line)["action"]))
                except (ValueError, KeyError, TypeError):
                    break  # a line cut by the kill: the steps end here
    except FileNotFoundError:
        pass
    n = min(len(frames), len(actions))
    if n == 0:
        raise CorpusError(f"{path} holds no frame with its step; delete it or re-record it")
    tmp = path.parent / f".{path.name}.finish.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    goal = None
    if (path / GOAL_FILE).exists():
        from PIL import Image
        with Image.open(path / GOAL_FILE) as im:
            goal = np.asarray(im.convert("RGB"))
    meta.pop("has_goal", None)
    w = EpisodeWriter(tmp, meta, goal=goal)
    for k in range(n):
        w.add(frames[k], actions[k], k / float(meta["fps"]))
    w.close(interrupted=True)
    for name in (VIDEO_FILE, STEPS_FILE, GOAL_FILE):  # the files first, meta.json last: finished only when whole
        if (tmp / name).exists():
            os.replace(tmp / name, path / name)
    os.replace(tmp / META_FILE, path / META_FILE)
    (path / PARTIAL_FILE).unlink(missing_ok=True)
    shutil.rmtree(tmp, ignore_errors=True)
    return w.meta


def episode_dirs(corpus_dir: str | Path) -> list[Path]:
    """Finished episode folders under ``corpus_dir`` (at any depth), in a stable order."""
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.is_dir():
        raise CorpusError(f"corpus folder {corpus_dir} does not exist; record one with python -m training.corpus")

    def key(p: Path):
        stem = p.name[3:] if p.name.startswith("ep_") else p.name
        return (str(p.parent), int(stem) if stem.isdigit() else -1, p.name)

    return sorted((m.parent for m in corpus_dir.rglob(META_FILE)), key=key)


def load_corpus(corpus_dir: str | Path, size: tuple[int, int] | None = None, games: tuple[str, ...] | None = None,
                progress: bool = False) -> tuple[list[np.ndarray], list[dict]]:
    """Load every finished episode under ``corpus_dir``.

    Args:
        corpus_dir: a corpus folder (episode folders at any depth).
        size: (H, W) to resize frames to (overlay included), or None to keep the recorded size.
        games: only episodes of these games, or None for all.
        progress: show a progress bar.
    Returns:
        (frames, metas): per episode a (T, H, W, 3) uint8 array, and its ``meta.json`` dict (with
        ``path`` added).
    """
    dirs = episode_dirs(corpus_dir)
    metas = []
    skipped = []

    def skip(why: str) -> None:
        skipped.append(why)
        print(f"warning: skipped an episode: {why}", file=sys.stderr, flush=True)

    for d in dirs:
        try:
            m = read_meta(d)
        except CorpusError as e:
            skip(str(e))
            continue
        if games is None or m.get("game") in games:
            if not isinstance(m.get("layout"), dict):
                skip(f"{d / META_FILE} names no overlay layout; re-record the episode or delete its folder")
                continue
            if m["n_frames"] < 1:
                skip(f"{d} has 0 frames (an interrupted recording); re-record it or delete its folder")
                continue
            m["path"] = str(d)
            metas.append(m)
    it = metas
    if progress and metas:
        from tqdm import tqdm
        it = tqdm(metas, desc="loading episodes", unit="ep")
    frames, kept = [], []
    for m in it:
        try:
            f = read_checked_frames(m["path"], m)
        except CorpusError as e:
            skip(str(e))
            continue
        frames.append(resize_frames(f, size) if size is not None else f)
        kept.append(m)
    if not kept:
        raise CorpusError(f"no {'intact ' if skipped else ''}finished episodes{' of ' + ', '.join(games) if games else ''} "
                          f"under {corpus_dir}{f' ({len(skipped)} damaged ones skipped)' if skipped else ''}; "
                          "record some with python -m training.corpus")
    return frames, kept


# ---- the scripted recorder ---------------------------------------------------------------------------
def record_episode(env, seed: int, ep_dir: str | Path, noise: float = 0.1, click_margin: int = 3) -> dict:
    """Play one episode of ``env`` with its demonstrator and write it to ``ep_dir``; returns the meta."""
    from games.demonstrators import Demonstrator
    layout = Layout.preset(env.layout_name)
    obs, info = env.reset(seed=seed)
    demo = Demonstrator(env, np.random.default_rng([seed, 1]), noise=noise, click_margin=click_margin)
    goal = info.get("goal_frame")
    meta = {"game": env.game, "seed": seed, "prompt": info["prompt"], "fps": env.fps,
            "layout": layout.to_dict(), "overlay_version": OVERLAY_VERSION, "source": "scripted",
            "noise": noise, "split": "eval" if env.eval_split else "train", "initial_state": info["state"]}
    if layout.has_mouse:
        meta["click_margin"] = click_margin
    if getattr(env, "run_to_cap", False):
        meta["run_to_cap"] = True  # reaching the goal did not end the episode (``success``: it was reached)
    # overwrite: a scripted episode is the same again from its seed, so an unfinished one is redone
    with EpisodeWriter(ep_dir, meta, goal=None if goal is None else render_overlay(goal, NOOP, layout),
                       overwrite=True) as w:
        w.add(render_overlay(obs, NOOP, layout), NOOP, 0.0)
        done = False
        while not done:
            action = demo.act()
            obs, _, terminated, truncated, info = env.step(action)
            done = terminated or truncated
            w.add(render_overlay(obs, action, layout), action, env.steps / env.fps)
        w.close(success=bool(info["success"]), steps=env.steps, final_state=info["state"])
    return w.meta


def record_scripted(game: str, n_episodes: int, out_dir: str | Path, seed0: int = 0, noise: float = 0.1,
                    progress: bool = True, click_margin: int = 3) -> dict:
    """Record ``n_episodes`` demonstrator episodes of ``game`` into ``out_dir/ep_<seed>/``.

    Seeds run from ``seed0`` and must stay in the training range (``games.heldout.TRAIN_SEEDS``).
    Finished episodes already in ``out_dir`` are kept, so an interrupted recording resumes (with
    the same ``noise`` and, for ``buttons``, ``click_margin``; see ``games.demonstrators``).

    Returns:
        ``{"episodes": n, "success_rate": ..., "frames": total frames}`` over the ``n_episodes`` seeds.
    """
    import games
    from games.heldout import check_train_seed
    if isinstance(n_episodes, bool) or not isinstance(n_episodes, int) or n_episodes < 1:
        raise ConfigError(f"n_episodes must be at least 1, got {n_episodes!r}")
    if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise <= 1:
        raise ConfigError(f"noise must be a number from 0 to 1 (the demonstrator's share of random actions), "
                          f"got {noise!r}")
    if not str(out_dir).strip():
        raise ConfigError("the corpus folder must be a path, got an empty string")
    for what, seed in (("--seed0", seed0), ("--seed0 + --episodes - 1", seed0 + n_episodes - 1)):
        try:
            check_train_seed(seed)
        except ConfigError as e:
            raise ConfigError(f"{what}: {e}") from None
    # a game whose demonstrator ignores the goal (maze) records every episode to the step cap, so
    # an episode's end never tells where the goal was
    run_to_cap = bool(getattr(games.env_class(game), "record_run_to_cap", False))
    env = games.make(game, split="train", **({"run_to_cap": True} if run_to_cap else {}))
    has_mouse = Layout.preset(env.layout_name).has_mouse
    out_dir = Path(out_dir)
    seeds = range(seed0, seed0 + n_episodes)
    it = seeds
    if progress:
        from tqdm import tqdm
        it = tqdm(seeds, desc=f"recording {game}", unit="ep")
    n_ok = n_frames = 0
    for seed in it:
        ep_dir = out_dir / f"ep_{seed}"
        meta = None
        if (ep_dir / META_FILE).exists():
            meta = read_meta(ep_dir)
            if meta.get("game") != game:
                raise CorpusError(f"{out_dir} already holds {meta.get('game')} episodes; record each game into "
                                 f"its own folder, e.g. {out_dir.parent / game}")
            if has_mouse and meta.get("click_margin", 0) != click_margin:
                raise CorpusError(f"{out_dir} holds episodes recorded with --click-margin {meta.get('click_margin', 0)}, "
                                 f"not {click_margin}; record into another folder or pass the same margin")
            if meta.get("interrupted"):
                import shutil
                shutil.rmtree(ep_dir)
                meta = None
        if meta is None:
            meta = record_episode(env, seed, ep_dir, noise=noise, click_margin=click_margin)
        n_ok += bool(meta["success"])
        n_frames += meta["n_frames"]
    env.close()
    return {"episodes": n_episodes, "success_rate": n_ok / n_episodes, "frames": n_frames}


def _parse_ints(text: str, n: int, what: str) -> tuple[int, ...]:
    try:
        vals = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        vals = ()
    if len(vals) != n:
        raise ConfigError(f"{what} needs {n} whole numbers separated by commas, got {text!r}")
    return vals


def main_screen(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m training.corpus screen",
                                description="Record yourself playing a region of the real screen.")
    p.add_argument("out_dir", help="episode folder to write, e.g. corpus/mygame/ep_0")
    p.add_argument("--region", required=True, help="left,top,width,height in screen pixels")
    p.add_argument("--layout", default="arrows", help="overlay layout preset or JSON file")
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--seconds", type=float, default=None, help="stop after this long (default: press Esc)")
    p.add_argument("--size", default=None, help="height,width to store frames at (default: the region's)")
    p.add_argument("--prompt", default=None, help="what the player is doing, stored with the episode")
    p.add_argument("--game", default="screen", help="a name for the game")
    p.add_argument("--overwrite", action="store_true", help="replace an episode already in out_dir")
    a = p.parse_args(argv)
    from framepilot.errors import FramepilotError
    from framepilot.record import record_human
    try:
        region = _parse_ints(a.region, 4, "--region")
        size = _parse_ints(a.size, 2, "--size") if a.size else None
        meta = record_human(a.out_dir, Layout.resolve(a.layout), region=region, fps=a.fps, seconds=a.seconds,
                            size=size, prompt=a.prompt, game=a.game, live=True, overwrite=a.overwrite)
    except (FramepilotError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"out_dir": str(a.out_dir), "n_frames": meta["n_frames"]}))
    return 0


def main(argv: list[str] | None = None) -> int:
    import games
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "screen":
        return main_screen(argv[1:])
    if argv and argv[0] == "finish":
        if len(argv) != 2:
            print("usage: python -m training.corpus finish EPISODE_FOLDER", file=sys.stderr)
            return 2
        try:
            meta = finish_episode(argv[1])
        except CorpusError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        print(json.dumps({"out_dir": argv[1], "n_frames": meta["n_frames"], "interrupted": True}))
        return 0
    p = argparse.ArgumentParser(prog="python -m training.corpus",
                                description="Record scripted demonstrator episodes of a bundled game.")
    p.add_argument("game", help=f"one of {', '.join(games.GAME_NAMES)}")
    p.add_argument("n_episodes", type=int)
    p.add_argument("out_dir")
    p.add_argument("--seed0", type=int, default=0, help="first seed (training seeds are 0..999999)")
    p.add_argument("--noise", type=float, default=0.1, help="demonstrator noise, 0..1")
    p.add_argument("--click-margin", type=int, default=3,
                   help="buttons: pixels inside a button's edges before the demonstrator clicks (default: %(default)s)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    try:
        stats = record_scripted(a.game, a.n_episodes, a.out_dir, seed0=a.seed0, noise=a.noise, progress=not a.quiet,
                                click_margin=a.click_margin)
    except (ValueError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
