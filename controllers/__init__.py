"""Real machine I/O: screen capture (mss) and safe keyboard/mouse execution (pynput, XTEST) on X11.

Imports without a display; pynput, mss and Xlib are loaded when a capture or executor is created.
"""

from controllers.capture import FrameSource, ScreenCapture, draw_pointer
from controllers.display import (
           AgentStopped,
           ControllerError,
           NoDisplayError,
           RegionError,
           WaylandError,
           WindowNotFoundError,
           check_display,
)
from controllers.executor import DryRunExecutor, Executor, PynputExecutor
from controllers.safety import DANGEROUS_COMBOS, RunControl, SafetyConfig, screen_action

__all__ = ["ScreenCapture", "FrameSource", "draw_pointer", "Executor", "PynputExecutor", "DryRunExecutor",
           "SafetyConfig", "RunControl", "DANGEROUS_COMBOS", "screen_action", "ControllerError", "AgentStopped",
           "NoDisplayError", "WaylandError", "RegionError", "WindowNotFoundError", "check_display"]
