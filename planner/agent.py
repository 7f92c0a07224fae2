"""The planner's step: context clip in, one decided action out.

One call to the world model imagines ``rollouts`` futures in a batch; the overlay is read in each
rollout's first predicted frame at or after the decision horizon; the readings are voted on (and,
with a goal frame, compared with it). Two horizons are kept apart:

- the decision horizon (default: the model's next frame, 0.1 s for the bundled 10 fps models):
  where the overlay is read. By the timing convention a frame's overlay shows the inputs held during
  the interval ending at it, so the frame one step ahead shows the action to hold now.
- the rollout length (>= the decision horizon): how much future the model imagines; extended
  automatically to reach a goal's offset when a goal is used.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from framepilot.errors import ConfigError
from overlays import Layout, read_overlay
from planner.vote import GOAL_MODES, VOTE_MODES, Decision, choose, choose_with_goal
from planner.world_model import ContextClip, GoalFrame, WorldModel

PLANS = ("vote", "search")


@dataclass
class PlannerConfig:
    """How the planner imagines and chooses.

    Args:
        rollouts: futures imagined per decision (one batch).
        decision_horizon: seconds after the last context frame at which the overlay is read; None
            means the model's next frame (``1 / native_fps``: 0.1 s at 10 fps, 0.067 s at 15 fps).
        rollout_length: seconds of future to imagine; None means the decision horizon (or the goal
            offset, when a goal needs more).
        vote: ``"joint"`` or ``"per-key"`` (see ``planner.vote``).
        abstain_below: decide a no-op when fewer than this fraction of rollouts agree (0 never abstains).
        goal_mode: ``"vote"``, ``"best-of-n"`` or ``"vote+best-of-n"`` (the last two need a goal frame).
        top_k: rollouts that vote in ``"vote+best-of-n"`` (default: the closer half).
        context_seconds: seconds of past frames given to the model.
        seed: base seed; decision k uses ``seed + k``. None: unseeded.
        plan: ``"vote"`` (read the overlay of ``rollouts`` sampled futures and vote; today's planner)
            or ``"search"`` (imagine candidate action sequences by overlay inpainting and act on the
            one whose imagined future comes closest to the goal frame: ``planner.search``; needs a
            goal frame and a model with ``overlay_inpainting``).
        search: the search planner's settings (``planner.search.SearchConfig()`` when None).
    """

    rollouts: int = 8
    decision_horizon: float | None = None
    rollout_length: float | None = None
    vote: str = "joint"
    abstain_below: float = 0.0
    goal_mode: str = "vote"
    top_k: int | None = None
    context_seconds: float = 1.0
    seed: int | None = None
    plan: str = "vote"
    search: object = None

    def __post_init__(self):
        if self.plan not in PLANS:
            raise ConfigError(f"plan must be one of {', '.join(PLANS)}, got {self.plan!r}")
        if self.plan == "search" and self.search is None:
            from planner.search import SearchConfig
            self.search = SearchConfig()
        if not (isinstance(self.rollouts, int) and self.rollouts >= 1):
            raise ConfigError(f"rollouts must be a whole number of at least 1, got {self.rollouts!r}")
        if self.decision_horizon is not None and not (
                isinstance(self.decision_horizon, (int, float)) and not isinstance(self.decision_horizon, bool)
                and math.isfinite(self.decision_horizon) and self.decision_horizon > 0):
            raise ConfigError(f"decision_horizon must be positive, finite seconds, got {self.decision_horizon!r}")
        if self.rollout_length is not None and not (isinstance(self.rollout_length, (int, float))
                                                    and math.isfinite(self.rollout_length)):
            raise ConfigError(f"rollout_length must be finite seconds or None, got {self.rollout_length!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            raise ConfigError(f"seed must be a whole number >= 0 or None, got {self.seed!r}")
        if (self.rollout_length is not None and self.decision_horizon is not None
                and self.rollout_length < self.decision_horizon - 1e-9):
            raise ConfigError(f"rollout_length ({self.rollout_length} s) must be at least the decision horizon "
                             f"({self.decision_horizon} s); lengthen it or leave it unset")
        if self.vote not in VOTE_MODES:
            raise ConfigError(f"vote must be 'joint' or 'per-key', got {self.vote!r}")
        if not 0.0 <= self.abstain_below <= 1.0:
            raise ConfigError(f"abstain_below must be between 0 and 1, got {self.abstain_below}")
        if self.goal_mode not in GOAL_MODES:
            raise ConfigError(f"goal_mode must be one of {', '.join(GOAL_MODES)}, got {self.goal_mode!r}")
        if self.top_k is not None and not 1 <= self.top_k <= self.rollouts:
            raise ConfigError(f"top_k must be between 1 and rollouts ({self.rollouts}), got {self.top_k}")
        if not (isinstance(self.context_seconds, (int, float)) and math.isfinite(self.context_seconds)
                and self.context_seconds > 0):
            raise ConfigError(f"context_seconds must be positive, got {self.context_seconds}")

    @property
    def uses_best_of_n(self) -> bool:
        return self.goal_mode != "vote"


class Agent:
    """Decides one action per step by asking ``model`` for futures and reading their overlays.

    Args:
        model: any ``WorldModel`` backend.
        layout: the overlay layout drawn on the context frames (strip placement).
        config: ``PlannerConfig()`` when None.
        prompt: text prompt for backends that take text.
        goals: goal frames (overlay drawn like the context). They go to the model when it takes goal
            frames; best-of-n compares rollouts with the one of largest offset. A goal given to a
            model without goal frames and without best-of-n is refused (it would be ignored).

    Raises:
        UnsupportedRequest: the model cannot take the prompt or the goals.
        ValueError: best-of-n without a goal.
    """

    def __init__(self, model: WorldModel, layout: Layout, config: PlannerConfig | None = None,
                 prompt: str | None = None, goals: tuple[GoalFrame, ...] | list[GoalFrame] = ()):
        self.model, self.layout = model, layout
        self.config = config if config is not None else PlannerConfig()
        self.prompt = prompt or None
        self.goals = tuple(goals)
        cap = model.capabilities
        if self.config.uses_best_of_n and not self.goals:
            raise ConfigError(f"goal_mode {self.config.goal_mode!r} needs a goal frame; "
                             "pass one or use goal_mode='vote'")
        # goals go to the model when it takes them; otherwise best-of-n uses them alone
        self.model_goals = self.goals if (cap.goal_frames or not self.config.uses_best_of_n) else ()
        if self.config.plan == "search":
            if not self.goals:
                raise ConfigError("--plan search needs a goal frame to rank the imagined futures against: pass "
                                  "--goal IMAGE (or play a game that gives one, such as reach-goal)")
            if not cap.overlay_inpainting:
                from planner.world_model import UnsupportedRequest
                raise UnsupportedRequest(f"--plan search needs a model that inpaints overlays; {model.name} does "
                                         "not: use --plan vote")
            from planner.search import vocabulary
            vocabulary(layout)  # a layout it cannot plan over is said now
        self.last_search = None
        self.memory = None
        if self.config.plan == "search":
            from planner.search import SearchMemory
            self.memory = SearchMemory()
        shape = self.goals[0].image.shape if self.goals else (16, 16, 3)
        probe = ContextClip(np.zeros((1, *shape), np.uint8), cap.native_fps)
        model.check_request(probe, self.config.rollouts, self.rollout_length(), self.prompt, self.model_goals)
        model.prepare(self.prompt)  # before the agent takes over: the first decision is not slower
        self.decisions = 0
        self.last_rollouts = None

    def reset(self) -> None:
        """Forget the episode: the search planner's visits and plan (the loop calls it when a run starts)."""
        if self.memory is not None:
            self.memory.reset()

    @property
    def fps(self) -> float:
        """Frames per second of the context clips the model wants."""
        return self.model.capabilities.native_fps

    @property
    def decision_horizon(self) -> float:
        """Seconds ahead at which the overlay is read: the configured horizon, else the model's next frame."""
        h = self.config.decision_horizon
        return h if h is not None else 1.0 / self.fps

    def rollout_length(self, horizon: float | None = None) -> float:
        """Seconds of future to imagine: the configured length, extended to the horizon and the goals' offsets."""
        c = self.config
        length = max(c.rollout_length or 0.0, self.decision_horizon if horizon is None else horizon)
        if self.goals:
            length = max(length, max(g.offset for g in self.goals))
        return length

    def decide(self, context: ContextClip, horizon: float | None = None) -> Decision:
        """Imagine, read and choose.

        Args:
            context: the last ~1 s of overlaid frames, ideally at ``self.fps``.
            horizon: read the overlay this many seconds after the last context frame instead of the
                configured decision horizon (the realtime loop adds its planning latency).
        Returns:
            ``Decision`` with per-stage timings (seconds): ``model``, ``read``, ``vote`` and the
            backend's own stages as ``model.<stage>``.
        """
        c = self.config
        horizon = self.decision_horizon if horizon is None else horizon
        seed = None if c.seed is None else c.seed + self.decisions
        self.decisions += 1
        if c.plan == "search":
            return self._search(context, seed)

        # 1. imagine n futures in one batch
        t0 = time.perf_counter()
        rollouts = self.model(context, n=c.rollouts, rollout_length=self.rollout_length(horizon), prompt=self.prompt,
                              goals=self.model_goals, seed=seed)
        t1 = time.perf_counter()
        self.last_rollouts = rollouts  # kept for recordings of the imagined futures

        # 2. read the overlay one decision horizon ahead in each future
        frames = rollouts.frame_at(horizon)
        readings = [read_overlay(f, self.layout) for f in frames]
        t2 = time.perf_counter()

        # 3. vote (and compare with the goal)
        if c.uses_best_of_n:
            goal = max(self.goals, key=lambda g: g.offset)
            decision = choose_with_goal(readings, rollouts.frame_at(goal.offset), goal.image, c.goal_mode, c.vote,
                                        c.abstain_below, self.layout, top_k=c.top_k)
        else:
            decision = choose(readings, c.vote, c.abstain_below)
        t3 = time.perf_counter()

        decision.horizon = horizon
        decision.timings = {"model": t1 - t0, "read": t2 - t1, "vote": t3 - t2,
                            **{f"model.{k}": v for k, v in rollouts.timings.items()}}
        return decision

    def _search(self, context: ContextClip, seed: int | None) -> Decision:
        from planner.search import search
        from planner.world_model import Rollouts
        goal = max(self.goals, key=lambda g: g.offset)
        decision, result = search(self.model, self.layout, context, goal, self.config.search, self.prompt,
                                  self.model_goals, seed, memory=self.memory)
        self.last_search = result
        self.last_rollouts = Rollouts(result.frames, self.model.capabilities.native_fps)
        return decision
