"""A tiny agent process for the kill tests: holds keys through PynputExecutor, then ends as told.

    python tests/agent_probe.py --mode hold --keys w,space [--no-guardian] [--no-exit-handlers]

Modes: ``hold`` (hold, print HOLDING, wait to be killed), ``raise`` (an exception inside the
``with`` block), ``exit`` (``sys.exit(0)`` without closing: only atexit can release), ``return``
(leave the ``with`` block normally).
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=("hold", "raise", "exit", "return"), default="hold")
    p.add_argument("--keys", default="w,space")
    p.add_argument("--no-guardian", action="store_true")
    p.add_argument("--no-exit-handlers", action="store_true")
    args = p.parse_args()

    from controllers import PynputExecutor, SafetyConfig
    from overlays import Action, Layout

    safety = SafetyConfig(countdown=0.0, deadline=None, focus_guard=False, guardian=not args.no_guardian,
                          exit_handlers=not args.no_exit_handlers)
    ex = PynputExecutor(Layout.preset("wasd"), safety=safety)
    action = Action(keys=frozenset(args.keys.split(",")))
    if args.mode == "exit":
        ex.start()
        ex.apply(action, 0.1)
        print("HOLDING", flush=True)
        sys.exit(0)
    with ex:
        held = ex.apply(action, 0.1)
        print("HOLDING", ",".join(sorted(held.keys)), flush=True)
        if args.mode == "raise":
            raise RuntimeError("the agent crashed on purpose")
        if args.mode == "hold":
            while True:
                time.sleep(0.1)


if __name__ == "__main__":
    main()
