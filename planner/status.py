"""Live status of a running agent in the terminal (rich): step, chosen action, vote agreement,
latency by stage, and whether the agent is active or paused."""

from __future__ import annotations

import sys

from planner.recording import action_text

STAGES = ("capture", "context", "overlay", "model", "read", "vote", "execute")


class LiveStatus:
    """A live panel on a terminal; one plain line per step elsewhere (logs, CI). Use as a context manager.

    Args:
        title: shown above the panel (game or window, model).
        enabled: False prints nothing.
    """

    def __init__(self, title: str, enabled: bool = True):
        from rich.console import Console
        self.title, self.enabled = title, enabled
        self.console = Console(stderr=True)
        self.live = None
        self.state = "agent active"
        self.last = None

    def __enter__(self) -> "LiveStatus":
        if self.enabled and self.console.is_terminal:
            from rich.live import Live
            self.live = Live(self._render(), console=self.console, refresh_per_second=8, transient=False)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
            self.live = None

    def set_state(self, state: str) -> None:
        """"agent active", "paused", "stopped: ...", "done"."""
        self.state = state
        if self.live is not None:
            self.live.update(self._render())
        elif self.enabled:
            print(f"[framepilot] {state}", file=sys.stderr, flush=True)

    def _render(self):
        from rich.table import Table
        t = Table(title=self.title, show_header=False, expand=False)
        t.add_column(style="bold")
        t.add_column()
        colour = "green" if self.state == "agent active" else "yellow"
        t.add_row("state", f"[{colour}]{self.state}[/]")
        if self.last is not None:
            step, decision, timings = self.last
            t.add_row("step", str(step))
            if decision is None:
                t.add_row("action", "dropped (late): released")
            else:
                t.add_row("action", action_text(decision.action))
                t.add_row("agreement", f"{decision.confidence:.0%} of {len(decision.votes)} rollouts")
            t.add_row("latency", self._timings(timings))
        return t

    @staticmethod
    def _timings(timings: dict) -> str:
        parts = [f"{k} {timings[k] * 1000:.0f}" for k in STAGES if k in timings]
        return " | ".join(parts) + " ms"

    def update(self, step: int, decision, timings: dict) -> None:
        self.last = (step, decision, timings)
        if not self.enabled:
            return
        if self.live is not None:
            self.live.update(self._render())
        else:
            act = "dropped" if decision is None else f"{action_text(decision.action)} ({decision.confidence:.0%})"
            print(f"step {step:4d}  {act:<28} {self._timings(timings)}", file=sys.stderr, flush=True)
