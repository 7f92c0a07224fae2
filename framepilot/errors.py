"""Errors a user can fix, apart from bugs.

Every exception here carries one sentence that says what is wrong and how to fix it. The command
line catches ``FramepilotError`` alone, prints that sentence and exits 2; anything else is a bug and
shows its traceback (``--debug`` shows the traceback of both). Raise these at the edge, where user
input (options, config files, checkpoints, corpora, the display) is first checked; an internal
invariant that breaks stays a plain exception. The value-like ones also subclass ``ValueError`` so
that callers catching ``ValueError`` keep working.
"""

from __future__ import annotations


class FramepilotError(Exception):
    """Something the user can fix; ``str(e)`` is one sentence saying what and how."""


class ConfigError(FramepilotError, ValueError):
    """An option or a config value is out of range, of the wrong type, or contradicts another."""


class LayoutError(FramepilotError, ValueError):
    """A layout file or preset is invalid."""


class MissingModel(FramepilotError, ValueError):
    """A checkpoint that is not there, is damaged, or is not a framepilot world model."""


class UnsupportedRequest(FramepilotError, ValueError):
    """The backend cannot do what was asked (text, goal frames, ...)."""


class CorpusError(FramepilotError, ValueError):
    """A corpus or an episode folder cannot be read or written as asked."""


class ControllerError(FramepilotError, RuntimeError):
    """Real-machine I/O (display, window, screen region, input) cannot go on."""


class AgentStopped(ControllerError):
    """The agent was stopped (hotkey, corner failsafe, closed window, limits); everything is released.
    Defined here, not in ``controllers``, so the agent loop in ``planner`` can end on it without
    importing the hardware."""


class RemoteModelError(FramepilotError, RuntimeError):
    """A model server (``--model http://HOST:PORT``) cannot be reached, refused the request, or failed it."""


class ServeError(FramepilotError, RuntimeError):
    """``framepilot serve`` cannot start: Ray is missing, the port is taken, the cluster cannot be joined."""
