"""Choose one action from n imagined futures: majority vote, best-of-n toward a goal, or both.

Voting works on ``overlays.OverlayReading`` values, one per rollout, read in the first predicted
frame at or after the decision horizon.

- ``joint``: the most common whole action (held keys and buttons; the mouse velocity is not part of
  an action's identity). Ties are broken by per-key agreement: for each tied candidate, the sum over
  rollouts and over every key and button of the probability that the rollout agrees with the
  candidate on it (``p`` where the candidate holds it, ``1 - p`` where it does not); a remaining tie
  goes to the candidate with fewer inputs, then to the alphabetically first. The mouse velocity is
  the medoid of the velocities of the rollouts that voted for the winner (below).
- ``per-key``: a key or button is held when at least half the rollouts hold it; the mouse velocity
  is the medoid over all rollouts.

The medoid is the one rollout's velocity whose summed Euclidean distance to the others' is least
(ties: the one nearest the component-wise median, then the first). It is a move some rollout
really imagined: when the rollouts scatter (heading for different places, or the same place at
different speeds) a component-wise median mixes them into a shorter move none of them made,
while the medoid keeps the most central whole one.

In both modes ``confidence`` is the fraction of rollouts whose keys and buttons equal the chosen
action's; below ``abstain_below`` the decision is a no-op (``abstained=True``).

Best-of-n distance (``goal_distances``): mean squared error, over RGB channels and pixels, between
a rollout frame and the goal frame after both are downscaled 4x by block averaging (values in
0..255), counting only blocks that lie entirely outside the overlay strip. The overlay never takes
part, so the goal may be drawn with any action (or none) in its strip.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from framepilot.errors import ConfigError
from overlays import NOOP, Action, Layout, OverlayReading, strip_box

VOTE_MODES = ("joint", "per-key")
GOAL_MODES = ("vote", "best-of-n", "vote+best-of-n")


@dataclass
class Decision:
    """What the planner decided in one step.

    Args:
        action: the action to hold now (``NOOP`` when abstaining).
        confidence: fraction of rollouts whose keys and buttons equal ``action``'s (0..1).
        votes: the action read in each rollout, in rollout order.
        chosen_index: the rollout picked by best-of-n, or None when best-of-n took no part.
        abstained: True when confidence was below the abstain threshold and ``action`` is a no-op.
        timings: seconds per stage (``"model"``, ``"read"``, ``"vote"``, ... ; ``"model.<stage>"`` from
            the backend).
        horizon: seconds after the last context frame at which the overlay was read.
        search: with ``plan="search"``, the candidates, their scores and the chosen one
            (``planner.search.SearchResult.to_dict()``), else None.
    """

    action: Action
    confidence: float
    votes: list[Action]
    chosen_index: int | None = None
    abstained: bool = False
    timings: dict = field(default_factory=dict)
    horizon: float | None = None
    search: dict | None = None


def _identity(a: Action) -> tuple[frozenset, frozenset]:
    return a.keys, a.buttons


def _medoid_mouse(actions: list[Action]) -> tuple[float, float]:
    v = np.array([a.mouse for a in actions], dtype=np.float64).reshape(-1, 2)
    spread = np.linalg.norm(v[:, None] - v[None], axis=-1).sum(axis=1)
    to_median = np.linalg.norm(v - np.median(v, axis=0), axis=1)
    i = np.lexsort((np.arange(len(v)), to_median, spread))[0]
    return float(v[i, 0]), float(v[i, 1])


def _agreement(identity: tuple[frozenset, frozenset], readings: list[OverlayReading]) -> float:
    keys, buttons = identity
    total = 0.0
    for r in readings:
        total += sum(p if k in keys else 1.0 - p for k, p in r.key_probs.items())
        total += sum(p if b in buttons else 1.0 - p for b, p in r.button_probs.items())
    return total


def _confidence(identity, votes: list[Action]) -> float:
    return sum(_identity(v) == identity for v in votes) / len(votes)


def choose(readings: list[OverlayReading], mode: str = "joint", abstain_below: float = 0.0) -> Decision:
    """One action from the overlay readings of n rollouts.

    Args:
        readings: one ``OverlayReading`` per rollout (at least one).
        mode: ``"joint"`` or ``"per-key"`` (see the module docstring).
        abstain_below: decide a no-op when the agreement fraction is below this (0..1; 0 never abstains).
    Returns:
        ``Decision`` with the action, the agreement fraction as confidence and every rollout's vote.
    """
    if mode not in VOTE_MODES:
        raise ConfigError(f"vote mode must be 'joint' or 'per-key', got {mode!r}")
    if not 0.0 <= abstain_below <= 1.0:
        raise ConfigError(f"abstain_below must be between 0 and 1, got {abstain_below}")
    if not readings:
        raise ValueError("there are no rollout readings to vote on; ask the model for at least one rollout")
    votes = [r.action for r in readings]
    if mode == "joint":
        counts = Counter(_identity(v) for v in votes)
        best = max(counts.values())
        tied = [ident for ident, c in counts.items() if c == best]
        if len(tied) > 1:
            tied.sort(key=lambda ident: (-_agreement(ident, readings), len(ident[0]) + len(ident[1]),
                                         sorted(ident[0]), sorted(ident[1])))
        keys, buttons = tied[0]
        mouse = _medoid_mouse([v for v in votes if _identity(v) == (keys, buttons)])
    else:
        n = len(votes)
        kc = Counter(k for v in votes for k in v.keys)
        bc = Counter(b for v in votes for b in v.buttons)
        keys = frozenset(k for k, c in kc.items() if 2 * c >= n)
        buttons = frozenset(b for b, c in bc.items() if 2 * c >= n)
        mouse = _medoid_mouse(votes)
    action = Action(keys=keys, mouse=mouse, buttons=buttons)
    confidence = _confidence((keys, buttons), votes)
    if confidence < abstain_below:
        return Decision(action=NOOP, confidence=confidence, votes=votes, abstained=True)
    return Decision(action=action, confidence=confidence, votes=votes)


# ---- goals ---------------------------------------------------------------------------------------
def _pool(x: np.ndarray, f: int) -> np.ndarray:
    """Block means of (..., H, W, C) over f x f blocks; the last H % f rows and W % f columns are left out."""
    h, w = x.shape[-3] // f, x.shape[-2] // f
    x = x[..., :h * f, :w * f, :]
    return x.reshape(*x.shape[:-3], h, f, w, f, x.shape[-1]).mean(axis=(-4, -2))


def goal_distances(frames: np.ndarray, goal: np.ndarray, layout: Layout | None = None, placement: str = "strip",
                   downscale: int = 4) -> np.ndarray:
    """Distance of each rollout frame to the goal (see the module docstring).

    Args:
        frames: (n, H, W, 3) uint8, one frame per rollout, overlay drawn with ``layout`` at ``placement``.
        goal: (H, W, 3) uint8.
        layout: the overlay layout, whose strip is left out; None compares whole frames.
        placement: where the overlay is (``"strip"`` below the frame, or a corner).
        downscale: block size of the averaging, pixels.
    Returns:
        (n,) float64 mean squared errors in (0..255)^2 units.
    """
    if frames.ndim != 4 or goal.shape != frames.shape[1:]:
        raise ValueError(f"goal shape {goal.shape} must equal the rollout frames' {frames.shape[1:]}; "
                         "draw the goal at the context size")
    if downscale < 1:
        raise ValueError(f"downscale must be at least 1, got {downscale}")
    H, W = frames.shape[1:3]
    mask = np.ones((H, W, 1), np.float32)
    if layout is not None:
        src = (H - layout.strip_height(W), W) if placement == "strip" else (H, W)
        x0, y0, pw, ph = strip_box(src, layout, placement)
        mask[y0:y0 + ph, x0:x0 + pw] = 0.0
    f = max(1, min(downscale, H, W))
    keep = _pool(mask, f)[..., 0] >= 1.0
    if not keep.any():
        raise ValueError("the overlay covers the whole frame, so there is nothing to compare with the goal")
    a = _pool(frames.astype(np.float32), f)
    b = _pool(goal.astype(np.float32)[None], f)
    se = ((a - b) ** 2).mean(axis=-1)  # (n, h, w)
    return se[:, keep].mean(axis=1).astype(np.float64)


def best_of_n(last_frames: np.ndarray, goal: np.ndarray, layout: Layout | None = None, placement: str = "strip",
              downscale: int = 4) -> int:
    """Index of the rollout whose frame is closest to the goal (the lowest index among equals).

    Args:
        last_frames: (n, H, W, 3) uint8, each rollout's frame at the goal's time.
        goal: (H, W, 3) uint8.
        layout, placement, downscale: as in ``goal_distances``.
    """
    return int(np.argmin(goal_distances(last_frames, goal, layout, placement, downscale)))


def choose_with_goal(readings: list[OverlayReading], last_frames: np.ndarray, goal: np.ndarray,
                     goal_mode: str = "vote+best-of-n", mode: str = "joint", abstain_below: float = 0.0,
                     layout: Layout | None = None, placement: str = "strip", top_k: int | None = None) -> Decision:
    """Combine the vote with a goal frame.

    - ``"vote"``: the plain vote (``choose``); the goal is not looked at.
    - ``"best-of-n"``: the action read in the rollout closest to the goal; confidence is the fraction
      of all rollouts agreeing with it; abstains below ``abstain_below`` like the vote.
    - ``"vote+best-of-n"``: the vote among the ``top_k`` rollouts closest to the goal (default: the
      closer half, ``ceil(n / 2)``); confidence is computed among those ``top_k``.
      ``chosen_index`` is the single closest rollout.

    Args:
        readings: one reading per rollout.
        last_frames: (n, H, W, 3) uint8, each rollout's frame at the goal's time.
        goal: (H, W, 3) uint8.
        top_k: how many of the closest rollouts vote in ``"vote+best-of-n"``.
    """
    if goal_mode not in GOAL_MODES:
        raise ConfigError(f"goal mode must be one of {', '.join(GOAL_MODES)}, got {goal_mode!r}")
    if goal_mode == "vote":
        return choose(readings, mode, abstain_below)
    if len(last_frames) != len(readings):
        raise ValueError(f"{len(readings)} readings but {len(last_frames)} rollout frames; "
                         "pass one of each per rollout")
    d = goal_distances(last_frames, goal, layout, placement)
    order = np.argsort(d, kind="stable")
    best = int(order[0])
    if goal_mode == "best-of-n":
        votes = [r.action for r in readings]
        a = readings[best].action
        conf = _confidence(_identity(a), votes)
        if conf < abstain_below:
            return Decision(action=NOOP, confidence=conf, votes=votes, chosen_index=best, abstained=True)
        return Decision(action=a, confidence=conf, votes=votes, chosen_index=best)
    k = (len(readings) + 1) // 2 if top_k is None else top_k
    if not 1 <= k <= len(readings):
        raise ConfigError(f"top_k must be between 1 and the number of rollouts ({len(readings)}), got {k}")
    dec = choose([readings[i] for i in order[:k]], mode, abstain_below)
    dec.votes = [r.action for r in readings]
    dec.chosen_index = best
    return dec
