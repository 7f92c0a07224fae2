"""framepilot's shared vocabulary: the errors a user can fix (``framepilot.errors``)."""

from framepilot.errors import (
                               AgentStopped,
                               ConfigError,
                               ControllerError,
                               CorpusError,
                               FramepilotError,
                               LayoutError,
                               MissingModel,
                               UnsupportedRequest,
)

__all__ = ["FramepilotError", "AgentStopped", "ConfigError", "ControllerError", "CorpusError", "LayoutError", "MissingModel",
           "UnsupportedRequest"]
