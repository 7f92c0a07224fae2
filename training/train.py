"""Train (or fine-tune) framepilot's bundled video world model on a recorded corpus.

The model only ever learns to predict the next frame, overlay strip included, from the frames
before it (plus the episode's prompt and goal frame when it has them). The actions recorded in
``steps.jsonl`` are never read here: they are for evaluation only.

Objective: EDM denoising (Karras et al. 2022; as DIAMOND) with log-normal noise levels, the EDM
loss weighting, and ``--strip-weight`` times more weight on the overlay strip's pixels, which
are a small share of the frame but carry the action the agent reads. An EMA of the weights is
what gets saved.

Resumable: the folder ``--out`` holds the EMA model (``save_pretrained``, safetensors), its
``framepilot.json`` metadata and ``training_state.safetensors`` (raw weights, optimiser, step and
random state). Running the same command again continues from there, bit for bit the same as an
uninterrupted run on the same machine and thread count. Every file is written atomically
(``framepilot.atomic``), so a kill at any moment leaves the last complete save; a damaged one is
named in one sentence. A non-finite loss stops the run without saving that step.

Examples::

    # train a model on a recorded corpus (the shipped checkpoints were trained in several stages,
    # each --init-from the one before: docs/model.md, "Reproducing the shipped checkpoints", has the
    # exact commands; each checkpoint's framepilot.json records the command of its last stage)
    python -m training.corpus reach 8000 data/corpus/reach
    python -m training.train --corpus data/corpus --games reach,reach-goal,coins --out runs/arrows --steps 12000

    # fine-tune the shipped model on your own recordings (same layout)
    python -m training.train --corpus corpus/mygame --init-from bundled:arrows --out runs/mygame --steps 2000
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from framepilot.atomic import atomic_path, atomic_write, replace_into
from framepilot.errors import ConfigError

DEFAULT_SIZE = (40, 32)  # (H, W) with the strip: the bundled games' 160x128 frames, block-mean / 4
STATE_FILE = "training_state.safetensors"


@dataclass
class TrainConfig:
    """Settings of one training run (all saved into the checkpoint's metadata).

    Args:
        corpus: folder of recorded episodes (any depth).
        out: checkpoint folder (created; resumed from when it already holds a training state).
        games: only episodes of these games (None: all).
        steps: total optimiser steps.
        batch: samples per step.
        lr: peak learning rate (linear warm-up over ``warmup`` steps, then constant).
        seed: seeds weights, sampling and noise.
        size: (H, W) frames are resized to, overlay strip included.
        context_frames: past frames the model sees.
        strip_weight: loss weight of the overlay strip's pixels relative to the game's.
        text_dropout: probability of dropping the prompt (the model also learns without one).
        ema: EMA decay of the saved weights.
        save_every: steps between checkpoints.
        minutes: also stop (saving) after this many minutes of this run's training (None: no limit).
        threads: torch CPU threads (0: torch's default).
        init_from: start from these weights (a checkpoint folder or ``bundled:NAME``) to fine-tune.
        transfer_from: start a new model from another checkpoint of any size or layout (``transferred``).
        block_out_channels: the UNet's widths.
        keypoints: spatial-softmax keypoints of the current and goal frames (see ``FramepilotUNet``).
        strip_head: the MLP denoiser of the overlay strip (see ``FramepilotUNet``).
        strip_x0: a new model's strip denoiser predicts the clean strip (see ``FramepilotUNet``).
        text_keypoints: prompt-conditioned keypoints of the strip denoiser (see ``FramepilotUNet``);
            None: 4 for a new model, the checkpoint's own when fine-tuning. Fine-tuning a checkpoint
            with more of them adds them with zero weight into the strip denoiser, so training starts
            from exactly the checkpoint's predictions.
        game_weights: relative sampling weight per game name (games not named: 1; None: every game
            equally often), e.g. ``{"coins": 3}`` to spend more of each batch on a harder game.
        strip_batch: extra samples per step for the strip denoiser alone (cheap: no UNet pass), with
            noise levels drawn from ``strip_p_mean``/``strip_p_std``, higher than the frame's: at
            high noise the next frame's overlay must be predicted from the game, which is what the
            agent reads; at low noise it is only cleaned up.
        device: ``auto``, ``cpu`` or ``cuda``.
        cache: an ``.npz`` file keeping the decoded corpus between runs (None: decode every time).
    """

    corpus: str = "data/corpus"
    out: str = "runs/worldmodel"
    games: tuple[str, ...] | None = None
    steps: int = 12000
    batch: int = 16  # what every shipped model trained with (64 ran 2-5 s per step on 2 cores)
    lr: float = 5e-4
    warmup: int = 200
    seed: int = 0
    size: tuple[int, int] = DEFAULT_SIZE
    context_frames: int = 1
    strip_weight: float = 10.0
    text_dropout: float = 0.1
    ema: float = 0.999
    save_every: int = 500
    minutes: float | None = None
    threads: int = 0
    init_from: str | None = None
    transfer_from: str | None = None
    block_out_channels: tuple[int, ...] = (32, 64, 64)
    keypoints: int = 32
    strip_head: bool = True
    text_keypoints: int | None = None
    strip_x0: bool = False
    game_weights: dict[str, float] | None = None
    strip_batch: int = 128
    strip_p_mean: float = 0.6
    strip_p_std: float = 1.4
    device: str = "auto"
    cache: str | None = None
    p_mean: float = -0.4
    p_std: float = 1.2

    def __post_init__(self):
        def whole(name, lo, hi=None, none=False):
            v = getattr(self, name)
            if v is None and none:
                return
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo or (hi is not None and v > hi):
                rng = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
                raise ConfigError(f"{_flag(name)} must be a whole number {rng}, got {v!r}")

        def number(name, lo=None, hi=None, lo_open=False, hi_open=False):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(v) \
                    or (lo is not None and (v <= lo if lo_open else v < lo)) \
                    or (hi is not None and (v >= hi if hi_open else v > hi)):
                want = "a finite number" + (f" {'>' if lo_open else '>='} {lo}" if lo is not None else "") + \
                    (f"{' and' if lo is not None else ''} {'<' if hi_open else '<='} {hi}" if hi is not None else "")
                raise ConfigError(f"{_flag(name)} must be {want}, got {v!r}")

        whole("steps", 1, MAX_STEPS)
        whole("batch", 1, MAX_BATCH)
        whole("strip_batch", 0, MAX_BATCH)
        whole("warmup", 1)
        whole("seed", 0, 2 ** 32 - 1)
        whole("context_frames", 1, 16)
        whole("save_every", 1)
        whole("threads", 0, 1024)
        whole("keypoints", 0, 1024)
        whole("text_keypoints", 0, 1024, none=True)
        if self.minutes is not None:
            number("minutes", 0.0, 1e6, lo_open=True)
        number("lr", 0.0, 1.0)
        number("strip_weight", 0.0, lo_open=True)
        number("text_dropout", 0.0, 1.0)
        number("ema", 0.0, 1.0, hi_open=True)
        number("p_mean")
        number("p_std", 0.0, lo_open=True)
        number("strip_p_mean")
        number("strip_p_std", 0.0, lo_open=True)
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"--device must be auto, cpu or cuda, got {self.device!r}")
        blocks = tuple(self.block_out_channels)
        if not blocks or not all(isinstance(c, int) and not isinstance(c, bool) and 1 <= c <= 4096 for c in blocks):
            raise ConfigError(f"block_out_channels must be whole numbers from 1 to 4096, got {self.block_out_channels!r}")
        size = tuple(self.size)
        div = 2 ** (len(blocks) - 1)
        if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in size) \
                or not all(8 <= v <= MAX_SIZE and v % max(2, div) == 0 for v in size):
            raise ConfigError(f"--size must be H,W, each from 8 to {MAX_SIZE} pixels and a multiple of {max(2, div)} "
                              f"(the network halves it {len(blocks) - 1} times), got {self.size!r}")
        if self.game_weights is not None:
            for k, w in self.game_weights.items():
                if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
                    raise ConfigError(f"--game-weights: the weight of {k!r} must be a finite number >= 0, got {w!r}")
        for name in ("corpus", "out"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name).strip():
                raise ConfigError(f"{_flag(name)} must be a folder path, got {getattr(self, name)!r}")
        for name in ("init_from", "transfer_from"):
            if getattr(self, name) is not None:
                _resolve_init(getattr(self, name), _flag(name))  # a missing checkpoint is said before the corpus loads
        if Path(self.out).exists() and not Path(self.out).is_dir():
            raise ConfigError(f"--out {self.out} is a file; pass a folder for the checkpoint")


#: caps on the sizes a training run takes (docs/reference.md, "Limits of the options")
MAX_STEPS, MAX_BATCH, MAX_SIZE = 10_000_000, 65_536, 1024


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# ---- data ---------------------------------------------------------------------------------------------
@dataclass
class FrameData:
    """A corpus flattened for sampling: frames and, per training sample, where to find its parts."""

    frames: np.ndarray            # (N, H, W, 3) uint8, every episode's frames back to back
    goals: np.ndarray             # (G, H, W, 3) uint8 goal frames (index 0 unused)
    texts: np.ndarray             # (P, 384) float32 prompt embeddings (row 0: no prompt, zeros)
    target: np.ndarray            # (S,) frame index of each sample's frame to predict
    first: np.ndarray             # (S,) index of its episode's first frame (context clamps there)
    prompt: np.ndarray            # (S,) row of ``texts``
    goal: np.ndarray              # (S,) row of ``goals`` (0: none)
    game: np.ndarray              # (S,) game id, for balanced sampling
    game_names: list[str] = field(default_factory=list)
    layout: dict | None = None
    fps: float = 10.0
    source_shape: tuple[int, int] | None = None
    n_episodes: int = 0
    frame_spec: dict | None = None  # framepilot.frames.FrameSpec.to_dict() of every episode


def build_data(corpus: str, size: tuple[int, int], games: tuple[str, ...] | None, text_encoder=None,
               progress: bool = True) -> FrameData:
    """Load ``corpus`` at ``size`` and index its samples (every frame after the first of an episode)."""
    from PIL import Image

    from training.corpus import load_corpus, resize_frames
    frames, metas = load_corpus(corpus, size=size, games=games, progress=progress)
    layouts = {json.dumps(m["layout"], sort_keys=True) for m in metas}
    if len(layouts) > 1:
        raise ConfigError(f"the corpus under {corpus} mixes {len(layouts)} overlay layouts; train one model per "
                         "layout (pass --games to pick episodes of one layout)")
    fpss = {float(m["fps"]) for m in metas}
    if len(fpss) > 1:
        raise ConfigError(f"the corpus under {corpus} mixes frame rates {sorted(fpss)}; record at one fps")
    spec = corpus_spec(corpus, metas)
    prompts = sorted({m.get("prompt") for m in metas if m.get("prompt")})
    if prompts and text_encoder is None:
        from worldmodel.text import shared_text_encoder
        text_encoder = shared_text_encoder()
    texts = np.zeros((1 + len(prompts), 384), np.float32)
    for i, p in enumerate(prompts):
        texts[1 + i] = text_encoder(p)
    prompt_row = {p: 1 + i for i, p in enumerate(prompts)}
    game_names = sorted({m.get("game") or "screen" for m in metas})
    goals = [np.zeros((*size, 3), np.uint8)]
    target, first, prompt, goal, game = [], [], [], [], []
    offset = 0
    for f, m in zip(frames, metas):
        g = 0
        gp = Path(m["path"]) / "goal.png"
        if gp.exists():
            try:
                with Image.open(gp) as im:
                    pixels = np.asarray(im.convert("RGB"))
            except (OSError, SyntaxError, ValueError) as e:
                raise ConfigError(f"the goal image {gp} is damaged ({type(e).__name__}); re-record that episode "
                                  "or delete its folder") from None
            goals.append(resize_frames(pixels[None], size)[0])
            g = len(goals) - 1
        n = len(f)
        for k in range(1, n):
            target.append(offset + k)
            first.append(offset)
            prompt.append(prompt_row.get(m.get("prompt"), 0))
            goal.append(g)
            game.append(game_names.index(m.get("game") or "screen"))
        offset += n
    if not target:
        raise ConfigError(f"the episodes under {corpus} have no frame after their first; record longer episodes")
    shape = metas[0].get("frame_shape")
    return FrameData(frames=np.concatenate(frames), goals=np.stack(goals), texts=texts,
                     target=np.asarray(target), first=np.asarray(first), prompt=np.asarray(prompt),
                     goal=np.asarray(goal), game=np.asarray(game), game_names=game_names,
                     layout=metas[0]["layout"], fps=float(metas[0]["fps"]),
                     source_shape=tuple(shape[:2]) if shape else None, n_episodes=len(metas),
                     frame_spec=spec.to_dict() if spec else None)


def corpus_spec(corpus: str, metas: list[dict]):
    """The one ``FrameSpec`` of a corpus's episodes; a corpus whose episodes were laid out differently is
    refused (resized to one model size they would put the strip, and everything else, in different
    places)."""
    from framepilot.frames import FrameSpec
    specs: dict = {}
    for m in metas:
        s = FrameSpec.from_meta(m)
        key = None if s is None else (s.height, s.width, s.layout, s.strip, s.fps)
        specs.setdefault(key, []).append((s, m["path"]))
    if len(specs) > 1:
        (a, pa), (b, pb) = (v[0] for v in list(specs.values())[:2])
        say = lambda s: "no recorded frame shape" if s is None else s.describe()  # noqa: E731
        raise ConfigError(f"the corpus under {corpus} mixes frame layouts: {pa} has {say(a)} but {pb} has "
                         f"{say(b)}; record every episode at one --size (framepilot record --screen --size H,W) "
                         "or train on one of them")
    return next(iter(specs.values()))[0][0] if specs else None


def cached_data(corpus: str, size: tuple[int, int], games: tuple[str, ...] | None, cache: str | None,
                progress: bool = True) -> FrameData:
    """``build_data``, saved to / loaded from the ``.npz`` file ``cache`` when given (a corpus of
    thousands of episodes takes minutes to decode; delete the file after recording more)."""
    import dataclasses
    if cache and Path(cache).exists():
        try:
            with np.load(cache, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                same = meta["corpus"] == str(corpus) and meta["size"] == list(size) and \
                    meta["games"] == (list(games) if games else None)
                arrays = {k: z[k] for k in ("frames", "goals", "texts", "target", "first", "prompt", "goal", "game")} \
                    if same else None
        except (zipfile.BadZipFile, EOFError, KeyError, ValueError, OSError) as e:
            raise ConfigError(f"the corpus cache {cache} is damaged ({type(e).__name__}); delete it and run again "
                              "(it is rebuilt from the corpus)") from None
        if arrays is not None:
            return FrameData(**arrays, **meta["fields"])
    data = build_data(corpus, size, games, progress=progress)
    if cache:
        fields = {f.name: getattr(data, f.name) for f in dataclasses.fields(data) if f.name in
                  ("game_names", "layout", "fps", "source_shape", "n_episodes", "frame_spec")}
        meta = {"corpus": str(corpus), "size": list(size), "games": list(games) if games else None, "fields": fields}
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache) as tmp, open(tmp, "wb") as f:  # a file object: savez adds no .npz suffix
            np.savez(f, meta=json.dumps(meta), **{k: getattr(data, k) for k in
                     ("frames", "goals", "texts", "target", "first", "prompt", "goal", "game")})
    return data


def to_unit(x):
    """uint8 (..., H, W, 3) tensor -> float (..., 3, H, W) in [-1, 1]."""
    return x.movedim(-1, -3).float() / 127.5 - 1.0


class Batcher:
    """Draws training batches: a game (uniformly, or by ``game_weights``), then one of its samples uniformly."""

    def __init__(self, data: FrameData, context_frames: int, text_dropout: float, device,
                 game_weights: dict[str, float] | None = None):
        import torch
        self.torch = torch
        self.data = data
        self.k = context_frames
        self.text_dropout = text_dropout
        self.device = device
        self.frames = torch.from_numpy(data.frames)
        self.goals = torch.from_numpy(data.goals)
        self.texts = torch.from_numpy(data.texts)
        self.by_game = [np.flatnonzero(data.game == g) for g in range(len(data.game_names))]
        w = np.array([float((game_weights or {}).get(name, 1.0)) for name in data.game_names])
        unknown = sorted(set(game_weights or {}) - set(data.game_names))
        if unknown or (w < 0).any() or w.sum() <= 0:
            raise ConfigError(f"game weights {game_weights} do not fit the corpus's games {data.game_names}; "
                             "name games it holds, with weights >= 0 and at least one above 0")
        self.p = None if game_weights is None else w / w.sum()

    def __call__(self, batch: int, rng: np.random.Generator):
        torch, d = self.torch, self.data
        if self.p is None:  # (kept apart so that runs without weights draw the very same batches as before)
            games = rng.integers(len(self.by_game), size=batch)
        else:
            games = rng.choice(len(self.by_game), size=batch, p=self.p)
        idx = np.array([self.by_game[g][rng.integers(len(self.by_game[g]))] for g in games])
        t = d.target[idx]
        ctx = np.maximum(t[:, None] - np.arange(self.k, 0, -1)[None], d.first[idx][:, None])
        target = to_unit(self.frames[torch.from_numpy(t)])
        context = to_unit(self.frames[torch.from_numpy(ctx)])
        prompt = d.prompt[idx].copy()
        prompt[rng.random(batch) < self.text_dropout] = 0
        text = self.texts[torch.from_numpy(prompt)]
        gi = torch.from_numpy(d.goal[idx])
        goal = to_unit(self.goals[gi])
        has_goal = (gi > 0).float().view(-1, 1, 1, 1)
        out = dict(target=target, context=context, text=text, goal=goal, has_goal=has_goal)
        return {k: v.to(self.device) for k, v in out.items()}


# ---- training ----------------------------------------------------------------------------------------
def edm_loss(denoised, x0, sigma, weight=None):
    """The EDM-weighted denoising loss of a batch, normalised by the mean weight of its noise levels
    (``weight``: optional per-pixel weights broadcast over (B, C, H, W))."""
    from worldmodel.model import SIGMA_DATA
    lam = (sigma ** 2 + SIGMA_DATA ** 2) / (sigma * SIGMA_DATA) ** 2
    err = (denoised - x0) ** 2
    per = (err if weight is None else err * weight).mean(dim=(1, 2, 3))
    return (lam * per).mean() / lam.mean()


def masked_goal(b: dict):
    """The batch's goal frames with zeros where an episode has none."""
    import torch
    return torch.where(b["has_goal"] > 0, b["goal"], torch.zeros_like(b["goal"]))


def strip_rows_for(layout: dict, size: tuple[int, int], source_shape: tuple[int, int] | None) -> int:
    """First row of the overlay strip at ``size``, from the recorded frame shape and the layout."""
    if source_shape is None:
        raise ConfigError("the corpus does not record its frame shape; re-record it")
    from framepilot.frames import FrameSpec
    return FrameSpec.from_meta({"source_shape": source_shape, "layout": layout}).strip_row(size)


def _resolve_init(init_from: str, flag: str = "--init-from") -> Path:
    if not isinstance(init_from, str) or not init_from:
        raise ConfigError(f"{flag} must be a checkpoint folder or bundled:NAME, got {init_from!r}")
    if init_from.startswith("bundled:"):
        from worldmodel.checkpoints import bundled_path
        return bundled_path(init_from.split(":", 1)[1])
    p = Path(init_from)
    if not (p / "config.json").exists():
        raise ConfigError(f"{flag} {init_from} is not a world-model checkpoint folder (no config.json); "
                         "pass a folder written by training.train or bundled:arrows")
    return p


def _copy_weights(old, new, mismatch):
    """Copy every weight of ``old`` into the same-named, same-shaped weight of ``new``; for a name
    whose shapes differ call ``mismatch(name, old_tensor, new_tensor)`` (no grad). Returns ``new``."""
    import torch
    old_state = old.state_dict()
    with torch.no_grad():
        for k, v in new.state_dict().items():
            o = old_state.get(k)
            if o is not None:
                v.copy_(o) if o.shape == v.shape else mismatch(k, o, v)
    return new


def grown(model, **changes):
    """A copy of ``model`` with config ``changes`` (e.g. more ``text_keypoints``): every weight of the
    same shape is copied; a weight that only grew (a layer with more inputs) keeps the old values in
    its leading slice and zeros in the new part, so the copy computes exactly what ``model`` did."""
    from worldmodel.model import FramepilotUNet
    config = {k: v for k, v in model.config.items() if not k.startswith("_")}
    config.update(changes)

    def grow(k, o, v):
        if o.dim() != v.dim() or any(a > b for a, b in zip(o.shape, v.shape)):
            raise ConfigError(f"cannot grow {k} from {tuple(o.shape)} to {tuple(v.shape)}")
        v.zero_()
        v[tuple(slice(0, n) for n in o.shape)] = o

    return _copy_weights(model, FramepilotUNet(**config), grow)


def transferred(old, new):
    """Copy into ``new`` what ``old`` (another frame size or layout) has learnt that does not depend
    on them: every weight of the same shape (the UNet's convolutions and attention, the keypoint net,
    the prompt paths); of the strip denoiser's input layer, the columns that read the keypoints, the
    noise level and the text keypoints (its last ones). The strip's own pixels start fresh."""
    n = 4 * new.config.keypoints + 2 + 2 * new.config.text_keypoints  # keypoints, goal flag, noise, text keypoints
    same = (old.config.keypoints, old.config.text_keypoints) == (new.config.keypoints, new.config.text_keypoints)

    def strip_columns(k, o, v):
        if k == "strip_in.weight" and same:
            v[:, -n:] = o[:, -n:]

    return _copy_weights(old, new, strip_columns)


def train(cfg: TrainConfig, progress: bool = True, data: FrameData | None = None) -> dict:
    """Run (or resume) training; returns a summary with the final losses."""
    import torch
    from safetensors.torch import save_file

    from worldmodel.checkpoints import write_metadata
    from worldmodel.model import FramepilotUNet

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = torch.device("cuda" if cfg.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if cfg.device == "auto" else cfg.device))
    out = Path(cfg.out)
    if data is None:
        data = cached_data(cfg.corpus, tuple(cfg.size), cfg.games, cfg.cache, progress=progress)
    strip_rows = strip_rows_for(data.layout, tuple(cfg.size), data.source_shape)

    torch.manual_seed(cfg.seed)
    if cfg.init_from:
        model = FramepilotUNet.from_pretrained(str(_resolve_init(cfg.init_from)))
        if cfg.text_keypoints is not None and cfg.text_keypoints != model.config.text_keypoints:
            model = grown(model, text_keypoints=cfg.text_keypoints)
        from framepilot.frames import FrameSpec
        from worldmodel.checkpoints import read_metadata
        old = read_metadata(_resolve_init(cfg.init_from))
        if list(model.config.sample_size) != list(cfg.size) or model.config.strip_rows != strip_rows:
            theirs = FrameSpec.from_meta(old)
            ours = FrameSpec.from_meta({"frame_spec": data.frame_spec, "source_shape": data.source_shape,
                                        "layout": data.layout, "fps": data.fps})
            fix = (f"record at its game area (framepilot record --screen --size {theirs.height},{theirs.width}; any "
                   "window is letterboxed to it)" if theirs else "record with the same layout and frame size")
            raise ConfigError(f"--init-from {cfg.init_from} works at {tuple(model.config.sample_size)} with its strip at "
                             f"row {model.config.strip_rows} ({theirs.describe() if theirs else 'its frames'}), but this "
                             f"corpus ({ours.describe() if ours else 'no frame shape'}) gives {tuple(cfg.size)} and row "
                             f"{strip_rows}: {fix}, or grow a new model from it with --transfer-from "
                             f"{cfg.init_from} --size H,W")
        if json.dumps(old.get("layout"), sort_keys=True) != json.dumps(data.layout, sort_keys=True):
            raise ConfigError(f"--init-from {cfg.init_from} was trained on layout {old.get('layout', {}).get('name')!r} "
                             f"but this corpus uses {data.layout.get('name')!r}; fine-tune on recordings with the same layout")
    else:
        model = FramepilotUNet(sample_size=tuple(cfg.size), strip_rows=strip_rows, context_frames=cfg.context_frames,
                               block_out_channels=tuple(cfg.block_out_channels), keypoints=cfg.keypoints,
                               strip_head=cfg.strip_head,
                               text_keypoints=(4 if cfg.strip_head else 0) if cfg.text_keypoints is None
                               else cfg.text_keypoints, strip_x0=cfg.strip_x0)
        if cfg.transfer_from:
            model = transferred(FramepilotUNet.from_pretrained(str(_resolve_init(cfg.transfer_from, "--transfer-from"))), model)
    model.to(device).train()
    ema = FramepilotUNet.from_config(model.config).to(device).eval()
    ema.load_state_dict(model.state_dict())
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-2, betas=(0.9, 0.99))
    rng = np.random.default_rng(cfg.seed)
    step = 0
    state_path = out / STATE_FILE
    if state_path.exists():
        state, meta = read_training_state(out)
        try:
            model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
            ema.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("ema.")})
            opt_state = opt.state_dict()
            params = opt_state["param_groups"][0]["params"]
            opt_state["state"] = {p: {"step": state[f"opt.{p}.step"], "exp_avg": state[f"opt.{p}.exp_avg"],
                                      "exp_avg_sq": state[f"opt.{p}.exp_avg_sq"]}
                                  for p in params if f"opt.{p}.step" in state}
            opt.load_state_dict(opt_state)
            rng.bit_generator.state = meta["numpy_rng"]
            torch.set_rng_state(state["torch_rng"])
        except (RuntimeError, ValueError, KeyError, TypeError) as e:
            raise ConfigError(f"{STATE_FILE} in {out} does not fit this model ({str(e).splitlines()[0][:160]}); "
                              f"run with the settings it was started with, or train into another --out") from None
        step = meta["step"]
        if progress:
            print(f"resuming {out} at step {step}", file=sys.stderr)

    batcher = Batcher(data, model.config.context_frames, cfg.text_dropout, device, cfg.game_weights)
    weight = torch.ones(1, 1, *cfg.size, device=device)
    weight[..., strip_rows:, :] = cfg.strip_weight
    weight = weight / weight.mean()

    def save():
        # every file is written beside its destination and renamed over it (framepilot.atomic): a kill at
        # any moment leaves the last complete save. The state's step and numpy rng also live in the
        # safetensors' own metadata, so the two state files can never disagree on a resume.
        bad = nonfinite_count(ema.state_dict().values()) + nonfinite_count(model.state_dict().values())
        if bad:
            raise ConfigError(f"training diverged at step {step}: {bad} weights are not finite; nothing was saved "
                              f"at this step (the last save in {out} is kept); lower --lr or check the corpus")
        replace_into(out, ema.save_pretrained)
        write_metadata(out, layout=data.layout, fps=data.fps, size=tuple(cfg.size), source_shape=data.source_shape,
                       games=data.game_names, steps=step, config=asdict(cfg), frame_spec=data.frame_spec)
        sd = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        sd.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.state_dict().items()})
        for p, s in opt.state_dict()["state"].items():
            for name in ("step", "exp_avg", "exp_avg_sq"):
                sd[f"opt.{p}.{name}"] = torch.as_tensor(s[name]).detach().cpu().contiguous()
        sd["torch_rng"] = torch.get_rng_state()
        meta = json.dumps({"step": step, "numpy_rng": rng.bit_generator.state})
        with atomic_path(state_path) as tmp:
            save_file(sd, str(tmp), metadata={"training_state": meta})
        atomic_write(out / STATE_JSON, meta)

    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=cfg.steps, initial=step, desc="training world model", unit="step")
    out.mkdir(parents=True, exist_ok=True)  # only now: a refused run leaves no folder behind
    log = open(out / "train_log.jsonl", "a")
    losses = []
    t0 = time.time()
    try:
        while step < cfg.steps:
            b = batcher(cfg.batch, rng)
            x0 = b["target"]
            sigma = torch.exp(cfg.p_mean + cfg.p_std * torch.randn(x0.shape[0], device=device))
            noisy = x0 + sigma.view(-1, 1, 1, 1) * torch.randn_like(x0)
            denoised = model(noisy, sigma, b["context"], b["text"], masked_goal(b), has_goal=b["has_goal"])
            loss = edm_loss(denoised, x0, sigma, weight)
            if model.config.strip_head and cfg.strip_batch:
                sb = batcher(cfg.strip_batch, rng)
                s0 = sb["target"][..., strip_rows:, :]
                ssig = torch.exp(cfg.strip_p_mean + cfg.strip_p_std * torch.randn(s0.shape[0], device=device))
                cond = model.conditions(sb["context"], sb["text"], masked_goal(sb), sb["has_goal"], sb["target"])
                sden = model.denoise_strip(s0 + ssig.view(-1, 1, 1, 1) * torch.randn_like(s0), ssig, cond)
                loss = loss + (((sden - s0) ** 2).mean() if model.config.strip_x0
                               else edm_loss(sden, s0, ssig))
            if not torch.isfinite(loss).item():
                raise ConfigError(f"the training loss became {loss.item()} at step {step + 1}; stopped without "
                                  f"saving it (the last save in {out}, if any, is kept); lower --lr or check the corpus")
            for g in opt.param_groups:
                g["lr"] = cfg.lr * min(1.0, (step + 1) / cfg.warmup)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            decay = min(cfg.ema, (1 + step) / (10 + step))
            with torch.no_grad():
                for pe, pm in zip(ema.parameters(), model.parameters()):
                    pe.lerp_(pm, 1 - decay)
            with torch.no_grad():
                strip = ((denoised - x0)[..., strip_rows:, :] ** 2).mean().item()
            losses.append((loss.item(), strip))
            if step % 50 == 0:
                l, s = np.mean(losses[-50:], axis=0)
                log.write(json.dumps({"step": step, "loss": float(l), "strip_mse": float(s),
                                      "elapsed_s": round(time.time() - t0, 1)}) + "\n")
                log.flush()
            if bar is not None:
                bar.update(1)
                if step % 10 == 0:
                    more = {}
                    if cfg.minutes is not None:  # the bar's own time left counts steps; the budget may end first
                        left = max(0.0, 60 * cfg.minutes - (time.time() - t0))
                        more["budget_left"] = f"{int(left // 60)}:{int(left % 60):02d}"
                    bar.set_postfix(loss=f"{np.mean([x[0] for x in losses[-50:]]):.4f}",
                                    strip=f"{np.mean([x[1] for x in losses[-50:]]):.4f}", **more)
            out_of_time = cfg.minutes is not None and time.time() - t0 >= 60 * cfg.minutes
            if step % cfg.save_every == 0 or step == cfg.steps or out_of_time:
                save()
            if out_of_time:
                if progress:
                    print(f"\n--minutes {cfg.minutes:g} reached at step {step}; saved to {out}", file=sys.stderr)
                break
    except KeyboardInterrupt:
        save()
        if bar is not None:
            bar.close()
        print(f"interrupted at step {step}; saved to {out}; run the same command again to resume", file=sys.stderr)
        raise
    finally:
        log.close()
    if bar is not None:
        bar.close()
    if not losses and not (out / "config.json").exists():
        save()
    last = np.mean(losses[-50:], axis=0) if losses else (float("nan"), float("nan"))
    return {"out": str(out), "step": step, "loss": float(last[0]), "strip_mse": float(last[1]),
            "seconds": round(time.time() - t0, 1), "episodes": data.n_episodes, "samples": int(len(data.target))}


STATE_JSON = "training_state.json"


def nonfinite_count(tensors) -> int:
    """How many values of the floating-point ``tensors`` are NaN or infinite."""
    import torch
    return int(sum(int((~torch.isfinite(t)).sum()) for t in tensors if torch.is_tensor(t) and t.is_floating_point()))


def read_training_state(out: str | Path) -> tuple[dict, dict]:
    """(tensors, {"step", "numpy_rng"}) of the training state in ``out``; a damaged file is a
    ``ConfigError`` that names it and says what to do."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file
    out = Path(out)
    fix = f"delete {out} (or its {STATE_FILE} and {STATE_JSON}) to start over, or train into another --out"
    state_path = out / STATE_FILE
    size = state_path.stat().st_size
    try:
        state = load_file(str(state_path))
        with safe_open(str(state_path), "pt") as f:
            inner = (f.metadata() or {}).get("training_state")
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        why = "empty" if size == 0 else f"{size} bytes, {type(e).__name__}: {str(e).splitlines()[0][:80]}"
        raise ConfigError(f"{STATE_FILE} in {out} is damaged ({why}); {fix}") from None
    if inner is not None:  # written with the tensors themselves: cannot disagree with them
        text, where = inner, STATE_FILE
    else:  # a state saved before the step moved into the safetensors
        try:
            text, where = (out / STATE_JSON).read_text(), STATE_JSON
        except FileNotFoundError:
            raise ConfigError(f"{STATE_JSON} is missing from {out} beside {STATE_FILE}; {fix}") from None
    try:
        meta = json.loads(text)
        if not (isinstance(meta, dict) and isinstance(meta.get("step"), int) and meta["step"] >= 0
                and isinstance(meta.get("numpy_rng"), dict)):
            raise ValueError("no step or random state")
    except (ValueError, UnicodeDecodeError) as e:
        why = "empty" if not text.strip() else (e.msg if isinstance(e, json.JSONDecodeError) else str(e))
        raise ConfigError(f"{where} in {out} is damaged ({why}); {fix}") from None
    bad = nonfinite_count(state.values())
    if bad:
        raise ConfigError(f"{STATE_FILE} in {out} holds {bad} non-finite values (a diverged run); {fix}")
    return state, meta


def _parse_size(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.split(","))
        return h, w
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be H,W in pixels (e.g. 40,32), got {text!r}") from None


def _parse_channels(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise ConfigError(f"--channels must be whole numbers separated by commas, e.g. 16,32,32; got {text!r}") from None


def _parse_weights(text: str) -> dict[str, float]:
    try:
        return {k.strip(): float(v) for k, v in (item.split("=") for item in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"game weights must be GAME=WEIGHT pairs separated by commas "
                                         f"(e.g. coins=3,reach=1), got {text!r}") from None


def add_arguments(p: argparse.ArgumentParser) -> None:
    d = TrainConfig()
    p.add_argument("--corpus", default=d.corpus, help="folder of recorded episodes (default: %(default)s)")
    p.add_argument("--out", default=d.out, help="checkpoint folder; resumed when it holds a training state (default: %(default)s)")
    p.add_argument("--games", default=None, help="comma-separated games to train on (default: every episode)")
    p.add_argument("--steps", type=int, default=d.steps, help="total optimiser steps (default: %(default)s)")
    p.add_argument("--batch", type=int, default=d.batch, help="samples per step (default: %(default)s)")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (default: %(default)s)")
    p.add_argument("--size", type=_parse_size, default=None, help="H,W frames are resized to, strip included "
                   "(default: a fine-tune's checkpoint's size; 40,32 for the bundled games; else the corpus's frames "
                   "brought to at most 96 pixels a side, see default_size)")
    p.add_argument("--channels", default=None, help="a new model's UNet widths, e.g. 16,32,32 (about 4x faster "
                   "to imagine with than the default 32,64,64) (default: 32,64,64)")
    p.add_argument("--minutes", type=float, default=None, help="also stop (and save) after this many minutes of "
                   "training; run the same command again to go on (default: no limit)")
    p.add_argument("--context-frames", type=int, default=d.context_frames, help="past frames the model sees (default: %(default)s)")
    p.add_argument("--strip-weight", type=float, default=d.strip_weight, help="loss weight of the overlay strip (default: %(default)s)")
    p.add_argument("--strip-batch", type=int, default=d.strip_batch, help="extra samples per step for the overlay "
                   "strip's denoiser (default: %(default)s)")
    p.add_argument("--text-keypoints", type=int, default=None, help="prompt-conditioned keypoints of the strip "
                   "denoiser (default: 4 for a new model, the checkpoint's own with --init-from)")
    p.add_argument("--strip-x0", action="store_true", help="a new model's strip denoiser predicts the clean strip "
                   "(x0) instead of EDM's residual: for wide strips such as the mouse layout's")
    p.add_argument("--game-weights", type=_parse_weights, default=None, help="relative sampling weights of games, "
                   "e.g. coins=3 (games not named: 1; default: every game equally often)")
    p.add_argument("--save-every", type=int, default=d.save_every, help="steps between checkpoints (default: %(default)s)")
    p.add_argument("--threads", type=int, default=d.threads, help="torch CPU threads, 0 for torch's default (default: %(default)s)")
    p.add_argument("--init-from", default=None, help="fine-tune from a checkpoint folder or bundled:arrows / bundled:mouse")
    p.add_argument("--transfer-from", default=None, help="start a new model (any size or layout) from what "
                   "another checkpoint learnt: its convolutions, keypoint net and prompt paths (see transferred())")
    p.add_argument("--device", default=d.device, choices=("auto", "cpu", "cuda"), help="(default: %(default)s)")
    p.add_argument("--cache", default=None, help="an .npz file that keeps the decoded corpus between runs (default: none)")


def default_size(corpus: str, init_from: str | None = None) -> tuple[int, int]:
    """The model size (H, W), strip included, when ``--size`` is not given: a fine-tune's checkpoint's
    own; for the bundled games' 160x128 frames 40x32 (the shipped models' size); for any other corpus
    its frames themselves, scaled by one factor so that the longer side is at most ``NEW_GAME_SIDE``
    pixels, each side rounded down to a multiple of 4 (the network halves it twice).
    At 96 pixels a 2-pixel Atari ball stays visible; DIAMOND plays Atari at 64x64."""
    if init_from:
        from worldmodel.model import FramepilotUNet
        return tuple(FramepilotUNet.load_config(str(_resolve_init(init_from)))["sample_size"])
    from training.corpus import episode_dirs, read_meta
    shapes = set()
    try:
        dirs = episode_dirs(corpus)[:50]
    except ValueError:
        return DEFAULT_SIZE  # (a missing corpus is said in one sentence when it loads)
    for d in dirs:
        try:
            shape = read_meta(d).get("frame_shape")
        except ValueError:
            continue
        if shape:
            shapes.add((int(shape[0]), int(shape[1])))
    if len(shapes) != 1:
        return DEFAULT_SIZE  # (an empty or mixed corpus is refused with its own sentence when it loads)
    h, w = shapes.pop()
    if (h, w) == (160, 128):
        return DEFAULT_SIZE
    s = min(1.0, NEW_GAME_SIDE / max(h, w))
    return max(8, int(h * s) // 4 * 4), max(8, int(w * s) // 4 * 4)


NEW_GAME_SIDE = 96


def config_from_args(a: argparse.Namespace) -> TrainConfig:
    size = tuple(a.size) if a.size else default_size(a.corpus, a.init_from)
    widths = {"block_out_channels": _parse_channels(a.channels)} if a.channels else {}  # else TrainConfig's
    return TrainConfig(corpus=a.corpus, out=a.out, games=tuple(a.games.split(",")) if a.games else None,
                       steps=a.steps, batch=a.batch, lr=a.lr, seed=a.seed, size=size, minutes=a.minutes, **widths,
                       context_frames=a.context_frames, strip_weight=a.strip_weight, save_every=a.save_every,
                       threads=a.threads, init_from=a.init_from, transfer_from=a.transfer_from, device=a.device,
                       cache=a.cache,
                       strip_batch=a.strip_batch, game_weights=a.game_weights,
                       text_keypoints=a.text_keypoints, strip_x0=a.strip_x0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    a = p.parse_args(argv)
    try:
        summary = train(config_from_args(a))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
