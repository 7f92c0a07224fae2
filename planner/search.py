"""The search planner: imagine candidate action sequences by overlay inpainting, rank the imagined
futures against the goal frame, act on the best, replan every step.

The video model takes no action input and is never trained to act. It is asked "what happens if I
hold left, then up?" by drawing those keys into the future frames' overlay strips and letting it
imagine the rest of each frame (``WorldModel(..., actions=...)``, which needs
``Capabilities.overlay_inpainting``). Each candidate is one such rollout of ``horizon`` frames,
each frame conditioned on the imagined frames before it.

- Candidates: sequences over the layout's vocabulary (no-op and each key alone). With ``candidates``
  at least the vocabulary size, every first action is tried at least once; the rest of each
  sequence is drawn at random, each frame independently (or, with ``holds``, as two holds: one
  key for a random number of frames, then another), seeded, or, after the first round, drawn
  around the best sequences
  (cross-entropy method: ``rounds`` refinement rounds resample from the elites' per-step action
  frequencies).
- Score: the distance (lower is better) of each imagined frame up to the goal's offset to the
  goal frame, in the model's own features when it has them (``WorldModel.features``: for the
  bundled model the keypoints its network computes, where things are as it sees them; the mean
  absolute difference), else ``goal_distance`` on pixels (a wide blur, relative to the current
  frame's). Pixels are a poor judge of imagined frames, which are blurrier than real ones: on 12
  held-out ``reach-goal`` states the best one-step candidate by pixels was a move toward the goal
  in 4, by keypoints in 9 (12 of 12 on the real frames). A candidate's
  score is its best frame's distance plus ``step_cost`` per frame taken to get there (sooner is
  better).
- Choice: the first action of the best candidate, or with ``top_k > 1`` the most common first
  action among the ``top_k`` best (ties: the better score). The decision's ``confidence`` is the
  share of candidates that began with the chosen action; ``Decision.search`` lists every
  candidate, its score and the chosen one (written to ``decisions.jsonl``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from framepilot.errors import ConfigError, UnsupportedRequest
from overlays import NOOP, Action, Layout
from planner.vote import Decision
from planner.world_model import (
    ContextClip,
    GoalFrame,
    Rollouts,
    WorldModel,
    decision_index,
    frames_needed,
)


@dataclass
class SearchConfig:
    """Args:
        candidates: action sequences imagined per round (one batch).
        horizon: frames each sequence is imagined for (its length).
        rounds: cross-entropy refinement rounds after the first (0: none).
        elites: sequences kept per round to resample around.
        top_k: first actions of the ``top_k`` best candidates vote (1: the best one decides).
        step_cost: added to a candidate's score per frame before its best frame.
        holds: the first round's sequences are two holds (a key for a random number of frames, then
            another key); False (default): every frame's action drawn independently.
        novelty: the penalty per earlier visit (``SearchMemory``) added to an imagined frame's
            distance, in units of the current frame's distance to the goal (0: no memory; default 0.2). A
            planner that only looks ``horizon`` frames ahead stops where every short route leads
            away from the goal (against a maze wall); with the penalty the states it keeps
            returning to grow worse until a way round scores better (count-based exploration,
            as in real-time heuristic search).
        warm_start: the last decision's best sequence, shifted one frame, is a candidate of the
            next decision (the plan is kept unless a better one is imagined).
        relative: score what each candidate changes rather than the frames imagined: one more
            sequence, nothing pressed, is imagined from the same noise (the bundled model inpaints
            with common random numbers), and each candidate's frames minus the reference's are added
            to the real current frame. An imagined frame is blurrier than a real one (8-18 times the
            current frame's distance to the goal on mazes), so imagined frames could not be compared
            with real states, remembered or current; their differences can.
        rank_by: ``"pixels"`` (default): ``goal_distance`` on pixels; ``"model"``: the model's own
            features when it has them (``WorldModel.features``; the bundled network's keypoints).
            With ``relative`` scoring, pixels won: 9 of 10 held-out reach-goal episodes against 2
            with keypoints (shipped model), 8 of 10 mazes against 0 (maze model), and with a perfect
            model 10 of 10 mazes against 4.
    """

    candidates: int = 16
    horizon: int = 3
    rounds: int = 0
    elites: int = 4
    top_k: int = 1
    step_cost: float = 0.001
    holds: bool = False
    novelty: float = 0.2
    warm_start: bool = True
    relative: bool = True
    rank_by: str = "pixels"

    def __post_init__(self):
        for name, lo in (("candidates", 1), ("horizon", 1), ("rounds", 0), ("elites", 1), ("top_k", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ConfigError(f"search {name} must be a whole number of at least {lo}, got {v!r}")
        if self.top_k > self.candidates or self.elites > self.candidates:
            raise ConfigError(f"search top_k ({self.top_k}) and elites ({self.elites}) must not exceed candidates "
                              f"({self.candidates})")
        if self.rank_by not in ("model", "pixels"):
            raise ConfigError(f"search rank_by must be 'model' or 'pixels', got {self.rank_by!r}")
        for name in ("step_cost", "novelty"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (np.isfinite(v) and v >= 0):
                raise ConfigError(f"search {name} must be zero or a positive number, got {v!r}")


def _holds(v: int, h: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` sequences of ``h`` actions (indices below ``v``, 0 the no-op): a key held for a random
    number of frames, then another key for the rest, as a person steers (and as a detour needs)."""
    first = rng.integers(1, v, size=n)
    second = rng.integers(1, v, size=n)
    split = rng.integers(1, h + 1, size=n)
    t = np.arange(h)[None]
    return np.where(t < split[:, None], first[:, None], second[:, None])


def vocabulary(layout: Layout) -> list[Action]:
    """What a candidate may do in one frame: nothing, or hold one of the layout's keys."""
    if layout.has_mouse or not layout.keys:
        raise UnsupportedRequest(f"the search planner plans over keys; layout {layout.name!r} has a mouse: use "
                                 "--plan vote")
    return [NOOP, *(Action(keys={k}) for k in layout.keys)]


BLUR = 1 / 3  # the blur's standard deviation, as a fraction of the frame width
# the blur of the features states are remembered and matched by, as a fraction of the frame width: an
# imagined frame blurrier than the real one must still match the real state it shows (a perfect model
# blurred with a 4-pixel Gaussian reached 2 of 10 held-out mazes unblurred features, 8 with these)
FEATURE_BLUR = 1 / 16


def _box(x: np.ndarray, r: int, axis: int) -> np.ndarray:
    """Mean over a window of 2r+1 along ``axis`` (edges repeated)."""
    if r < 1:
        return x
    pad = [(0, 0)] * x.ndim
    pad[axis] = (r + 1, r)
    c = np.cumsum(np.pad(x, pad, mode="edge"), axis=axis, dtype=np.float64)
    n = x.shape[axis]
    hi = np.take(c, np.arange(2 * r + 1, 2 * r + 1 + n), axis=axis)
    lo = np.take(c, np.arange(0, n), axis=axis)
    return ((hi - lo) / (2 * r + 1)).astype(np.float32)


def blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-like blur of (..., H, W, C) images: three box passes per axis (standard deviation ~``sigma``)."""
    r = max(0, int(round((np.sqrt(4 * sigma ** 2 + 1) - 1) / 2)))  # 3 boxes of 2r+1 give sigma^2 = r(r+1)
    for axis in (-3, -2):
        for _ in range(3):
            x = _box(x, r, axis)
    return x


def goal_distance(frames: np.ndarray, goal: np.ndarray, layout: Layout, now: np.ndarray | None = None) -> np.ndarray:
    """(n,) distances of (n, H, W, 3) frames to the (H, W, 3) goal; lower is closer, 0 is the goal.

    The mean squared difference of the game areas (the overlay strip left out) after a wide blur
    (standard deviation ``BLUR`` of the frame width, on 4x4 block means), divided by that of the
    current frame ``now`` when given (now scores 1). A wide blur of a small object overlaps the
    goal's from anywhere on the frame, so the distance falls with every step toward the goal and is
    0 on it: it tolerates the model's blur and says "closer" from afar, where a pixel distance is
    flat until the object reaches the goal. It also does not reward an object that vanished (an
    imagined marker blurred away), which a pixel distance rates as halfway there: a vanished object
    overlaps nothing, and scores about as badly as not moving.
    """
    H, W = frames.shape[1:3]
    rows = H - layout.strip_height(W)
    f = max(1, min(4, rows, W))
    rows -= rows % f
    pool = lambda x: x[:, :rows, :W - W % f].reshape(x.shape[0], rows // f, f, (W - W % f) // f, f, 3).mean(axis=(2, 4))  # noqa: E731
    sigma = BLUR * W / f
    a = blur(pool(frames.astype(np.float32)), sigma)
    b = blur(pool(goal[None].astype(np.float32)), sigma)
    d = ((a - b) ** 2).mean(axis=(1, 2, 3))
    if now is not None:
        d = d / max(float(((blur(pool(now[None].astype(np.float32)), sigma) - b) ** 2).mean()), 1e-9)
    return d


def _pixel_features(frames: np.ndarray, layout: Layout) -> np.ndarray:
    """(n, D) 4x4 block means of the game areas (the overlay strip left out), blurred (``FEATURE_BLUR``):
    what states are remembered by when the model's own features are not used."""
    H, W = frames.shape[1:3]
    rows = H - layout.strip_height(W)
    f = max(1, min(4, rows, W))
    rows -= rows % f
    x = frames[:, :rows, :W - W % f].astype(np.float32)
    x = x.reshape(x.shape[0], rows // f, f, (W - W % f) // f, f, 3).mean(axis=(2, 4))
    if FEATURE_BLUR:
        x = blur(x, FEATURE_BLUR * W / f)
    return x.reshape(x.shape[0], -1)


class SearchMemory:
    """What one episode's search remembers: the states it has been in (their features) with how often,
    the first actions that really left a state as it was (``futile``), and its last best plan.

    The imagination can be wrong where the real game is plain: a model that imagines the marker
    through a maze wall one time in four keeps choosing that move, and the visit count cannot stop it
    (the state it imagines is new; the real one never changes). What really happened overrides what
    was imagined: an action executed in a state that stayed the same (no move, as ``observe`` tells a
    move) is remembered for that state, and a candidate starting with it there ranks below every
    other. (Scored as staying instead, it won every time: an imagined frame is blurrier than the
    real one, so every imagined future scored 8-18 times the current frame's distance to the goal.)

    A state matches a remembered one when their features (mean absolute difference) are closer than
    ``match`` times the median distance between consecutive real states that differed by more than 5%
    of the distance to the goal (one move, as this game moves); before any move was seen, closer than ``match`` times the current state's
    distance to the goal divided by 8. At most ``capacity`` states are kept (the oldest go).
    """

    def __init__(self, match: float = 0.5, capacity: int = 512):
        self.match, self.capacity = float(match), int(capacity)
        self.keys: list[np.ndarray] = []
        self.counts: list[int] = []  # real visits of each remembered state
        self.steps: list[float] = []
        self.last: np.ndarray | None = None
        self.plan: np.ndarray | None = None  # vocabulary indices of the last best sequence
        self.action: int | None = None  # vocabulary index of the action executed after the last observe
        self.futile: dict[int, set[int]] = {}  # remembered state -> first actions that left it as it was

    def reset(self) -> None:
        self.__init__(self.match, self.capacity)

    def tolerance(self, goal_distance: float) -> float:
        if self.steps:
            return self.match * float(np.median(self.steps))
        return self.match * goal_distance / 8

    def _nearest(self, feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        keys = np.stack(self.keys)
        d = np.abs(feats[:, None] - keys[None]).mean(axis=2)
        i = d.argmin(axis=1)
        return i, d[np.arange(len(feats)), i]

    def observe(self, feat: np.ndarray, goal_distance: float) -> None:
        """Count a visit to the real state with features ``feat`` (and, when the action executed since
        the last one left that state as it was, remember it as futile there)."""
        if self.last is not None:
            moved = float(np.abs(feat - self.last).mean())
            if moved > 0.05 * goal_distance:  # a move (a state unchanged differs by noise at most)
                self.steps.append(moved)
                self.steps = self.steps[-64:]
            elif self.action is not None:
                self.futile.setdefault(self.state_of(self.last, goal_distance), set()).add(self.action)
        self.last, self.action = feat, None
        self.state_of(feat, goal_distance, visit=True)

    def state_of(self, feat: np.ndarray, goal_distance: float, visit: bool = False) -> int:
        """The index of the remembered state ``feat`` matches (a new one is added when none does);
        ``visit`` counts a visit to it."""
        if self.keys:
            i, d = self._nearest(feat[None])
            if d[0] < self.tolerance(goal_distance):
                self.counts[int(i[0])] += visit
                return int(i[0])
        self.keys.append(feat)
        self.counts.append(int(visit))
        if len(self.keys) > self.capacity:
            self.keys.pop(0)
            self.counts.pop(0)
            self.futile = {k - 1: v for k, v in self.futile.items() if k > 0}
        return len(self.keys) - 1

    def futile_here(self, feat: np.ndarray, goal_distance: float) -> set[int]:
        """The first actions that really left the state ``feat`` as it was."""
        if not self.keys or not self.futile:
            return set()
        i, d = self._nearest(feat[None])
        return self.futile.get(int(i[0]), set()) if d[0] < self.tolerance(goal_distance) else set()

    def visits(self, feats: np.ndarray, goal_distance: float) -> np.ndarray:
        """(n,) how often each of ``feats`` was visited (its nearest remembered state's count, 0 when none
        matches)."""
        if not self.keys:
            return np.zeros(len(feats))
        i, d = self._nearest(feats)
        counts = np.asarray(self.counts, float)[i]
        return np.where(d < self.tolerance(goal_distance), counts, 0.0)


@dataclass
class SearchResult:
    """The candidates of one decision (for recordings): their actions, scores, and the chosen one."""

    candidates: list[list[Action]]
    scores: list[float]
    best_frame: list[int]
    chosen: int
    rounds: int = 1
    frames: np.ndarray | None = field(default=None, repr=False)  # (n, F, H, W, 3) of the last round

    def to_dict(self) -> dict:
        return {"candidates": [[a.to_dict() for a in c] for c in self.candidates],
                "scores": [round(s, 6) for s in self.scores], "best_frame": self.best_frame,
                "chosen": self.chosen, "rounds": self.rounds}


def search(model: WorldModel, layout: Layout, context: ContextClip, goal: GoalFrame, cfg: SearchConfig,
           prompt: str | None = None, model_goals: tuple[GoalFrame, ...] = (), seed: int | None = None,
           memory: SearchMemory | None = None) -> tuple[Decision, SearchResult]:
    """One search decision: ``(Decision, SearchResult)``. ``memory`` (one per episode) carries the
    visits and the plan from decision to decision."""
    vocab = vocabulary(layout)
    fps = model.capabilities.native_fps
    length = cfg.horizon / fps
    h = frames_needed(length, fps, model.capabilities.temporal_compression)
    upto = min(h, decision_index(goal.offset, fps) + 1) if goal.offset > length else h
    rng = np.random.default_rng(seed)
    probs = np.full((h, len(vocab)), 1.0 / len(vocab))
    timings = {"model": 0.0, "score": 0.0}
    best = None
    now = context.frames[-1]
    model_feats = model.features(np.stack([now, goal.image])) if cfg.rank_by == "model" else None
    own = model_feats is not None

    def feats_of(frames):
        return model.features(frames) if own else _pixel_features(frames, layout)

    now_goal = model_feats if own else _pixel_features(np.stack([now, goal.image]), layout)
    now_d = max(float(np.abs(now_goal[0] - now_goal[1]).mean()), 1e-9)  # the current frame's distance
    futile: set[int] = set()
    if memory is not None and cfg.novelty > 0:
        memory.observe(now_goal[0], now_d)
        futile = memory.futile_here(now_goal[0], now_d)
    for r in range(cfg.rounds + 1):
        if r == 0 and cfg.holds:  # two holds: one key for a frames, then another for the rest
            idx = _holds(len(vocab), h, cfg.candidates, rng)
        else:
            idx = np.stack([rng.choice(len(vocab), size=cfg.candidates, p=probs[t]) for t in range(h)], 1)
        if r == 0:  # distinct first actions: every one at least once when there are enough candidates
            k = min(cfg.candidates, len(vocab))
            idx[:k, 0] = np.arange(k) if k == len(vocab) else rng.permutation(len(vocab))[:k]
            if cfg.warm_start and memory is not None and memory.plan is not None and cfg.candidates > k \
                    and len(memory.plan) == h:  # the last plan, one frame on
                idx[k] = np.append(memory.plan[1:], rng.integers(len(vocab)))
        seqs = [[vocab[i] for i in row] for row in idx]
        # each distinct sequence imagined once (from common noise, equal sequences imagine equal futures),
        # with, for relative scoring, the reference: nothing pressed
        keyed = [tuple(int(i) for i in row) for row in idx] + ([(0,) * h] if cfg.relative else [])
        position = {row: i for i, row in enumerate(dict.fromkeys(keyed))}
        distinct, where = list(position), [position[row] for row in keyed]
        t0 = time.perf_counter()
        imagined = model(context, n=len(distinct), rollout_length=length, prompt=prompt, goals=model_goals,
                         seed=None if seed is None else seed + 7919 * r,
                         actions=[[vocab[i] for i in row] for row in distinct], layout=layout)
        t1 = time.perf_counter()
        rollouts = Rollouts(imagined.frames[where[:cfg.candidates]], imagined.fps, imagined.timings)
        frames = rollouts.frames[:, :upto]
        n, f = frames.shape[:2]
        flat = frames.reshape(n * f, *frames.shape[2:])
        ref = imagined.frames[where[-1], :upto] if cfg.relative else None
        if own:  # the model's own features: where things are, as it sees them
            feats = feats_of(flat)
            if cfg.relative:  # what each candidate changes, in features, from the real current state
                feats = (feats.reshape(n, f, -1) - feats_of(ref)[None] + model_feats[0]).reshape(n * f, -1)
            d = np.abs(feats - model_feats[1]).mean(axis=1).reshape(n, f) / now_d
        else:
            if cfg.relative:  # what each candidate changes, imagined, added to the real current frame
                mixed = np.clip(now.astype(np.int16) + frames.astype(np.int16) - ref.astype(np.int16), 0, 255)
                game_rows = now.shape[0] - layout.strip_height(now.shape[1])
                mixed[:, :, game_rows:] = frames[:, :, game_rows:]  # each candidate's own overlay
                frames = mixed.astype(np.uint8)
                flat = frames.reshape(n * f, *frames.shape[2:])
                rollouts = Rollouts(np.concatenate([frames, rollouts.frames[:, upto:]], 1), rollouts.fps,
                                    rollouts.timings)
            feats = feats_of(flat) if memory is not None and cfg.novelty > 0 else None
            d = goal_distance(flat, goal.image, layout, now=now).reshape(n, f)
        if memory is not None and cfg.novelty > 0:
            d = d + cfg.novelty * memory.visits(feats, now_d).reshape(n, f)
            if futile:  # the real game left this state as it was after these: ranked below every other
                d[np.isin(idx[:, 0], sorted(futile))] = d.max() + 1.0
        d = d + cfg.step_cost * np.arange(f)[None]
        scores, best_frame = d.min(axis=1), d.argmin(axis=1)
        timings["model"] += t1 - t0
        timings["score"] += time.perf_counter() - t1
        for k, v in rollouts.timings.items():
            timings[f"model.{k}"] = timings.get(f"model.{k}", 0.0) + v
        result = SearchResult([list(s) for s in seqs], [float(s) for s in scores], [int(b) for b in best_frame],
                              int(np.argmin(scores)), rounds=r + 1, frames=rollouts.frames)
        if best is None or min(result.scores) <= min(best.scores):
            best, best_idx = result, idx
        if r < cfg.rounds:  # resample around the elites
            elite = np.argsort(scores)[:cfg.elites]
            counts = np.stack([np.bincount(idx[elite, t], minlength=len(vocab)) for t in range(h)]).astype(float)
            probs = (counts + 0.1) / (counts + 0.1).sum(axis=1, keepdims=True)
    order = np.argsort(best.scores)
    if cfg.top_k == 1:
        chosen = int(order[0])
    else:
        firsts = [best.candidates[i][0] for i in order[:cfg.top_k]]
        keys = [(a.keys, a.buttons) for a in firsts]
        top = max(set(keys), key=lambda k: (keys.count(k), -keys.index(k)))
        chosen = int(order[keys.index(top)])
    best.chosen = chosen
    if memory is not None:
        memory.plan = best_idx[chosen].copy()
        memory.action = int(best_idx[chosen][0])
    action = best.candidates[chosen][0]
    firsts = [c[0] for c in best.candidates]
    agree = sum(a.keys == action.keys for a in firsts) / len(firsts)
    decision = Decision(action=action, confidence=agree, votes=firsts, chosen_index=chosen, timings=timings,
                        horizon=1.0 / fps, search=best.to_dict())
    return decision, best
