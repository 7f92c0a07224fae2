"""framepilot's planner: imagine futures with a video model, read the overlay, vote, act."""

from planner.world_model import (
                                 Capabilities,
                                 ContextClip,
                                 GoalFrame,
                                 Rollouts,
                                 UnsupportedRequest,
                                 WorldModel,
                                 decision_index,
                                 fit_frames,
                                 frames_needed,
                                 resample_clip,
)

__all__ = ["Capabilities", "ContextClip", "GoalFrame", "Rollouts", "UnsupportedRequest", "WorldModel",
           "decision_index", "fit_frames", "frames_needed", "resample_clip"]
from planner.agent import Agent, PlannerConfig
from planner.context import ContextBuffer
from planner.loop import EpisodeResult, Step, run_episode_sync, run_realtime
from planner.vote import Decision, best_of_n, choose, choose_with_goal, goal_distances

__all__ += ["Agent", "PlannerConfig", "ContextBuffer", "EpisodeResult", "Step", "run_episode_sync", "run_realtime",
            "Decision", "best_of_n", "choose", "choose_with_goal", "goal_distances"]
