"""framepilot: an agent that acts by imagining video.

It draws a virtual keyboard/mouse overlay onto the frames it sees, asks a video model for several
possible futures, reads the overlay 0.1 s ahead in each, votes, and presses the winning keys.

Examples::

    framepilot                                         # the agent plays `reach` with the shipped model
    framepilot play --game coins --prompt "collect the blue coin" --rollouts 8
    framepilot play --game reach-goal --goal my_goal.png
    framepilot play --game reach --real-window --mode sync        # a real window, real keys (X11)
    framepilot screen --window "My Game" --layout arrows --dry-run
    framepilot record --game reach --episodes 200 --out corpus/reach
    framepilot record --screen --window "My Game" --layout arrows --out corpus/mine/ep_0
    framepilot train --corpus corpus/mine --init-from bundled:arrows --out runs/mine --steps 2000
    framepilot eval --game coins --episodes 40 --json runs/eval.json
    framepilot bench --game reach --episodes 20 --json runs/bench.json

Every subcommand takes ``--config settings.toml`` (keys are option names, e.g. ``rollouts = 4``,
at the top level or under a ``[play]``-style table) and ``--help``. A mistake you can fix (an option,
a file, the display) is said in one sentence with exit code 2; anything else is a bug and shows its
traceback. ``--debug`` anywhere on the line shows the traceback of both.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields

from framepilot.bench import BenchConfig, bench  # noqa: F401 (the subcommands, named here for tests and users)
from framepilot.errors import (
    ConfigError as UsageError,  # bad input from the command line: one sentence
)
from framepilot.errors import FramepilotError
from framepilot.play import PlanOptions, PlayConfig, ScreenConfig, play, screen  # noqa: F401


# ---- record, train, eval ------------------------------------------------------------------------------
def record(a: argparse.Namespace) -> dict:
    """Scripted demonstrator episodes of a bundled game, or a person playing the real screen."""
    if a.screen:
        from controllers.display import Rect
        from framepilot.record import record_human
        from overlays import Layout
        region = Rect.parse(a.region).as_tuple() if a.region else None
        size = None
        if a.size:
            try:
                size = tuple(int(v) for v in a.size.split(","))
                assert len(size) == 2 and min(size) > 0
            except (ValueError, AssertionError):
                raise UsageError(f"--size must be H,W in pixels, e.g. 128,160; got {a.size!r}") from None
        if a.keys and a.layout is not None:
            raise UsageError("pass either --keys or --layout, not both")
        layout = Layout.of_keys(a.keys.split(",")) if a.keys else Layout.resolve(a.layout or "arrows")
        return record_human(a.out, layout, window=a.window, region=region, fps=a.fps,
                            seconds=a.seconds, size=size, prompt=a.prompt, game=a.game or "screen", live=True,
                            overwrite=a.overwrite, fit=a.fit)
    import games
    from training.corpus import record_scripted
    if not a.game or a.game not in games.GAME_NAMES:
        raise UsageError(f"record needs --game, one of {', '.join(games.GAME_NAMES)} (or --screen to record yourself)")
    return record_scripted(a.game, a.episodes, a.out, seed0=a.seed0, noise=a.noise)


# ---- the command line ---------------------------------------------------------------------------------
def _add_plan_options(p: argparse.ArgumentParser, d: PlanOptions) -> None:
    g = p.add_argument_group("planning")
    g.add_argument("--model", default=d.model, help="bundled (the shipped model), bundled:arrows, a checkpoint "
                   "folder, a diffusers hub id, a local diffusers folder, a single .safetensors file, or http://HOST:PORT "
                   "(a model served by framepilot serve; token in $FRAMEPILOT_TOKEN) (default: %(default)s)")
    g.add_argument("--prompt", default=d.prompt, help="text prompt (default: the game's own prompt)")
    g.add_argument("--goal", default=d.goal, help="goal image (PNG/JPEG screenshot) to steer toward (default: none)")
    g.add_argument("--goal-offset", type=float, default=d.goal_offset, help="seconds after now at which the goal "
                   "should be reached (default: %(default)s)")
    g.add_argument("--rollouts", type=int, default=d.rollouts, help="imagined futures per decision (default: %(default)s)")
    g.add_argument("--decision-horizon", type=float, default=d.decision_horizon, help="seconds ahead at which the "
                   "overlay is read (default: the model's next frame, 0.1 s at 10 fps)")
    g.add_argument("--rollout-length", type=float, default=d.rollout_length, help="seconds of future to imagine "
                   "(default: the decision horizon, or the goal offset)")
    g.add_argument("--denoise-steps", type=int, default=d.denoise_steps, help="denoising steps (default: the model's)")
    g.add_argument("--frame-steps", type=int, default=d.frame_steps, help="the bundled model's denoising steps for the "
                   "imagined game area; the overlay, where the action is read, takes --denoise-steps (default: 1)")
    g.add_argument("--vote", default=d.vote, choices=("joint", "per-key"), help="(default: %(default)s)")
    g.add_argument("--plan", default=d.plan, choices=("vote", "search"), help="vote: read the overlay of sampled "
                   "futures and vote; search: imagine candidate key sequences by overlay inpainting and act on the "
                   "one closest to the goal image (--rollouts candidates; needs a goal) (default: %(default)s)")
    g.add_argument("--search-horizon", type=int, default=d.search_horizon, help="with --plan search: frames each "
                   "candidate is imagined for (default: %(default)s)")
    g.add_argument("--search-rounds", type=int, default=d.search_rounds, help="with --plan search: cross-entropy "
                   "refinement rounds (default: %(default)s)")
    g.add_argument("--search-top-k", type=int, default=d.search_top_k, help="with --plan search: the first actions "
                   "of this many best candidates vote (default: %(default)s)")
    g.add_argument("--search-novelty", type=float, default=d.search_novelty, help="with --plan search: the "
                   "penalty per earlier visit of an imagined state, relative to the current distance to the goal "
                   "(0: no memory of visits) (default: %(default)s)")
    g.add_argument("--goal-mode", default=d.goal_mode, choices=("vote", "best-of-n", "vote+best-of-n"),
                   help="how a goal image picks the action (default: %(default)s)")
    g.add_argument("--abstain-below", type=float, default=d.abstain_below, help="do nothing when fewer than this "
                   "fraction of rollouts agree (default: %(default)s)")
    g.add_argument("--seed", type=int, default=d.seed, help="episode and sampling seed (default: %(default)s, a held-out seed)")
    g.add_argument("--max-steps", type=int, default=d.max_steps, help="stop after this many steps (default: the game's cap)")
    o = p.add_argument_group("output")
    o.add_argument("--out", default=d.out, help="folder for run recordings (default: %(default)s)")
    o.add_argument("--no-record", dest="record", action="store_false", help="write no recording")
    o.add_argument("--gif", action="store_true", help="also write run.gif")
    o.add_argument("--quiet", action="store_true", help="no live status")


def _game_names() -> tuple[str, ...]:
    import games
    return games.GAME_NAMES


def build_parser() -> argparse.ArgumentParser:
    from overlays import PRESETS
    fmt = argparse.RawDescriptionHelpFormatter
    p = _Parser(prog="framepilot", description=__doc__, formatter_class=fmt)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    pp = sub.add_parser("play", help="the agent plays a bundled game", formatter_class=fmt, description="""\
The agent plays a bundled game with a world model (the shipped one by default).

    framepilot play --game coins --prompt "collect the blue coin"
    framepilot play --game reach-goal --goal goal.png --rollouts 16
    framepilot play --game reach --real-window --mode realtime""")
    d = PlayConfig()
    pp.add_argument("--game", default=d.game, help=f"one of {', '.join(_game_names())} (default: %(default)s)")
    pp.add_argument("--episodes", type=int, default=d.episodes, help="episodes, seeds counting up (default: %(default)s)")
    pp.add_argument("--real-window", action="store_true", help="play the game in a real window through mss and pynput")
    pp.add_argument("--mode", default=d.mode, choices=("sync", "realtime"), help="sync: the game waits for the "
                    "agent; realtime: it runs at 10 steps/s (needs --real-window) (default: %(default)s)")
    pp.add_argument("--scale", type=int, default=d.scale, help="window pixels per game pixel (default: %(default)s)")
    _add_plan_options(pp, d)

    ps = sub.add_parser("screen", help="the agent on your real screen (X11)", formatter_class=fmt, description="""\
The agent on a region or window of the real screen, in realtime, with safety on:
F12 stops (releases everything), F11 pauses/resumes, the pointer in a screen corner stops,
a focus guard pauses when the window loses focus, and dangerous combinations are refused.

    framepilot screen --window "My Game" --layout arrows --prompt "reach the flag"
    framepilot screen --region 0,0,640,480 --layout wasd --dry-run""")
    d = ScreenConfig()
    ps.add_argument("--region", default=None, help="L,T,W,H in screen pixels")
    ps.add_argument("--window", default=None, help="window title (exact, else a case-insensitive part of it)")
    ps.add_argument("--layout", default=d.layout, help=f"{', '.join(PRESETS)}, keys:K1,K2 (e.g. keys:up,down) or a "
                    "layout JSON file (default: the layout a framepilot checkpoint was trained with; arrows for "
                    "other models)")
    ps.add_argument("--dry-run", action="store_true", help="send no input; log what would have been sent")
    ps.add_argument("--mouse-scale", type=float, default=d.mouse_scale,
                    help="screen pixels per pixel of the overlay's mouse velocity: the window's size over the frame "
                         "size the model learnt on, e.g. 2 for a bundled game at twice its size (default: %(default)s)")
    ps.add_argument("--decision-interval", type=float, default=d.decision_interval, help="seconds between decisions (default: %(default)s)")
    ps.add_argument("--deadline", type=float, default=d.deadline, help="drop decisions older than this and release (default: %(default)s)")
    ps.add_argument("--max-seconds", type=float, default=d.max_seconds, help="stop after this long (default: %(default)s)")
    ps.add_argument("--stop-key", default=d.stop_key, help="emergency stop hotkey (default: %(default)s)")
    ps.add_argument("--pause-key", default=d.pause_key, help="pause/resume hotkey (default: %(default)s)")
    ps.add_argument("--countdown", type=float, default=d.countdown, help="seconds before the agent acts (default: %(default)s)")
    ps.add_argument("--no-focus-guard", action="store_true", help="do not pause when the window loses focus")
    ps.add_argument("--no-corner-failsafe", action="store_true", help="do not stop when the pointer hits a corner")
    ps.add_argument("--allow-dangerous", action="store_true", help="allow super, alt+f4, ctrl+alt+delete and similar")
    _add_plan_options(ps, d)

    pr = sub.add_parser("record", help="record a corpus: scripted episodes or yourself playing", formatter_class=fmt,
                        description="""\
Record episodes in framepilot's corpus format (frames with the overlay, prompt, goal, inputs).

    framepilot record --game coins --episodes 500 --out corpus/coins
    framepilot record --screen --window "My Game" --layout arrows --out corpus/mine/ep_0 --size 160,128""")
    pr.add_argument("--game", default=None, help="a bundled game (scripted) or a name stored with --screen")
    pr.add_argument("--episodes", type=int, default=100, help="scripted episodes (default: %(default)s)")
    pr.add_argument("--out", required=False, default="corpus", help="corpus folder (scripted) or episode folder (--screen) (default: %(default)s)")
    pr.add_argument("--seed0", type=int, default=0, help="first training seed (default: %(default)s)")
    pr.add_argument("--noise", type=float, default=0.1, help="demonstrator noise (default: %(default)s)")
    pr.add_argument("--screen", action="store_true", help="record a person playing on the real screen (Esc stops)")
    pr.add_argument("--window", default=None, help="with --screen: window title")
    pr.add_argument("--region", default=None, help="with --screen: L,T,W,H")
    pr.add_argument("--layout", default=None, help="with --screen: the keys to hear and draw (default: arrows)")
    pr.add_argument("--keys", default=None, help="with --screen: a layout of just these keys, e.g. up,down (the "
                    "keys the game uses; the agent is then run with --layout keys:up,down) (default: --layout)")
    pr.add_argument("--fps", type=float, default=None, help="with --screen: frames per second (default: the "
                    "window's own frame rate, measured before recording starts)")
    pr.add_argument("--seconds", type=float, default=None, help="with --screen: stop after this long (default: Esc only)")
    pr.add_argument("--size", default=None, help="with --screen: H,W of the game area frames are stored at, the "
                    "corpus's frame contract (default: the captured size); to fine-tune a shipped model give its "
                    "game area, 128,128 for bundled:arrows")
    pr.add_argument("--fit", default="letterbox", choices=("letterbox", "stretch"), help="with --screen and "
                    "--size: how the capture is brought to that size (default: %(default)s)")
    pr.add_argument("--prompt", default=None, help="with --screen: what the player was asked to do")
    pr.add_argument("--overwrite", action="store_true", help="with --screen: replace an episode (finished or "
                    "not) already in --out; without it such a folder is refused and nothing is deleted")

    pt = sub.add_parser("train", help="train or fine-tune the bundled world model", formatter_class=fmt,
                        description=__import__("training.train", fromlist=["__doc__"]).__doc__)
    from training.train import add_arguments as train_args
    train_args(pt)

    pe = sub.add_parser("eval", help="closed-loop evaluation against baselines", formatter_class=fmt,
                        description=__import__("training.evaluate", fromlist=["__doc__"]).__doc__)
    from training.evaluate import add_arguments as eval_args
    eval_args(pe)

    pb = sub.add_parser("bench", help="rollouts vs decision latency and success; JSON and a PNG plot",
                        formatter_class=fmt, description="""\
Decision latency p50/p95 for each rollout count (and denoising steps) on one frame of a bundled
game, and, in sync mode, the success rate over held-out episodes; writes JSON and a PNG plot.

    framepilot bench --game reach --rollouts 1,2,4,8,16,32 --episodes 20
    framepilot bench --no-success --denoise-steps 1,3 --json runs/latency.json""")
    d = BenchConfig()
    pb.add_argument("--model", default=d.model, help="(default: %(default)s)")
    pb.add_argument("--game", default=d.game, help="(default: %(default)s)")
    pb.add_argument("--rollouts", default=d.rollouts, help="(default: %(default)s)")
    pb.add_argument("--denoise-steps", default=d.denoise_steps, help="comma-separated (default: %(default)s)")
    pb.add_argument("--frame-steps", type=int, default=d.frame_steps, help="the bundled model's steps for the imagined "
                    "game area (default: the model's, 1)")
    pb.add_argument("--episodes", type=int, default=d.episodes, help="episodes per row for the success rate (default: %(default)s)")
    pb.add_argument("--decisions", type=int, default=d.decisions, help="timed decisions per row (default: %(default)s)")
    pb.add_argument("--seed", type=int, default=d.seed, help="first held-out seed (default: %(default)s)")
    pb.add_argument("--no-success", action="store_true", help="latency only")
    pb.add_argument("--json", default=d.json, help="(default: %(default)s)")
    pb.add_argument("--plot", default=None, help="PNG path (default: the JSON path with .png)")

    from framepilot.serve import DESCRIPTION as serve_doc
    from framepilot.serve import add_arguments as serve_args
    pv = sub.add_parser("serve", help="serve a world model to agents on other machines (Ray Serve)",
                        formatter_class=fmt, description=serve_doc)
    serve_args(pv)

    for sp in (pp, ps, pr, pt, pe, pb, pv):
        sp.add_argument("--config", default=None, help="a TOML file of settings (option names as keys)")
    return p


def apply_config_file(parser: argparse.ArgumentParser, command: str, path: str) -> dict:
    """Set ``parser``'s defaults from the TOML file ``path`` (top-level keys, or a ``[command]`` table);
    returns them by dest."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise UsageError(f"config file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"config file {path} is not valid TOML ({str(e).splitlines()[0]})") from None
    except OSError as e:
        raise UsageError(f"config file {path} cannot be read ({e.strerror or type(e).__name__})") from None
    values = {k: v for k, v in data.items() if not isinstance(v, dict)}
    if not isinstance(data.get(command, {}), dict):
        raise UsageError(f"config file {path} sets {command!r} to {data[command]!r}; [{command}] must be a table")
    values.update(data.get(command, {}))
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    actions = {a.dest: a for a in sub._actions}
    out = {}
    for k, v in values.items():
        dest = k.replace("-", "_")
        if dest not in actions or dest in ("help", "config"):
            raise UsageError(f"config file {path} sets {k!r}, which `framepilot {command}` does not take; "
                             f"see framepilot {command} --help")
        out[dest] = config_value(actions[dest], v, path, k)
    sub.set_defaults(**out)
    return out


def config_value(action: argparse.Action, v, path: str, key: str):
    """A TOML value as the option ``action`` would have parsed it; a value of the wrong kind (a list,
    a table, text where a number belongs, a number out of ``choices``) names the file and the key."""
    opt = action.option_strings[-1] if action.option_strings else key

    def bad(want: str):
        return UsageError(f"config file {path} sets {key!r} to {v!r}, but {opt} takes {want}")

    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        if not isinstance(v, bool):
            raise bad("true or false")
        return v  # the key is the option's dest: record = false is --no-record
    if isinstance(v, (list, dict)) or (isinstance(v, bool) and action.type is not None):
        raise bad("one value" if action.type is None else f"one {getattr(action.type, '__name__', 'value')}")
    if action.type is not None:
        if action.type is int and isinstance(v, float):
            raise bad("a whole number")
        try:
            v = action.type(v if action.type in (int, float) else str(v))
        except (ValueError, TypeError, argparse.ArgumentTypeError):
            raise bad({int: "a whole number", float: "a number"}.get(action.type, "a value of its form")) from None
    elif isinstance(v, (int, float)) and not isinstance(v, bool):
        v = str(v)  # a text option given a number, e.g. rollouts = 4 for bench's comma list
    elif not isinstance(v, str):
        raise bad("text")
    if action.choices is not None and v not in action.choices:
        raise bad(f"one of {', '.join(map(str, action.choices))}")
    return v


class _Parser(argparse.ArgumentParser):
    """argparse's own mistakes (a missing value, an unknown option, text for a number) as one
    ``ConfigError`` sentence, like every other bad input."""

    def error(self, message):
        raise UsageError(f"{message} (see {self.prog} --help)")


def _config_of(cls, ns: argparse.Namespace):
    return cls(**{f.name: getattr(ns, f.name) for f in fields(cls) if hasattr(ns, f.name)})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv  # the traceback of a user error too (a bug always shows its own)
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    from_file: dict = {}  # the options a --config file set: a refusal of one of them names the file
    if not argv:
        argv = ["play"]  # the main job: the shipped model plays a bundled game and records it
    try:
        pre = _Parser(prog="framepilot", add_help=False)
        pre.add_argument("command", nargs="?")
        pre.add_argument("--config", default=None)
        known, _ = pre.parse_known_args(argv)
        if known.config and known.command:
            from_file = apply_config_file(parser, known.command, known.config)
        a = parser.parse_args(argv)
        if a.command is None:
            parser.print_help()
            return 0
        if a.command == "play":
            result = play(_config_of(PlayConfig, a))
        elif a.command == "screen":
            result = screen(_config_of(ScreenConfig, a))
        elif a.command == "bench":
            result = bench(_config_of(BenchConfig, a))
        elif a.command == "record":
            result = record(a)
        elif a.command == "serve":
            from framepilot.serve import run as serve
            return serve(a)
        elif a.command == "train":
            from training.train import config_from_args, train
            result = train(config_from_args(a))
        else:
            from training.evaluate import run
            return run(a)
        print(json.dumps(result, indent=1, default=str))
        return 0
    except KeyboardInterrupt:
        print("interrupted; everything was released", file=sys.stderr)
        return 130
    except FramepilotError as e:
        if debug:
            raise
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        opt = msg.split(" ", 1)[0].rstrip(":")
        if opt.startswith("--") and opt[2:].replace("-", "_") in from_file and \
                not any(x == opt or x.startswith(opt + "=") for x in argv):
            msg = f"config file {known.config}: {msg}"
        print(f"error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
