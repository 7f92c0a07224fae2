"""framepilot's planner: imagine futures with a video model, read the overlay, vote, act."""

from planner.world_model import (Capabilities, ContextClip, GoalFrame, Rollouts, UnsupportedRequest, WorldModel,
                                 decision_index, fit_frames, frames_needed, resample_clip)

__all__ = ["Capabilities", "ContextClip", "GoalFrame", "Rollouts", "UnsupportedRequest", "WorldModel",
           "decision_index", "fit_frames", "frames_needed", "resample_clip"]
