"""Teacher-forced probe of a world model's imagined actions on held-out states (a diagnostic, not
the evaluation: closed-loop success in ``training.evaluate`` is what counts).

For held-out seeds of a grid game, walk the demonstrator's trajectory; at each state ask the model
for ``n`` one-frame futures of the current frame (overlay of the last executed action drawn) and read
the overlay of each: the share of readings that are one of the demonstrator's shortest-path keys
(``good``), that hold no key (``blank``), and the vote's pick being good (``vote_good``).

    python -m training.probe --model worldmodel/checkpoints/arrows --game reach --states 60

``--keypoints``: which objects of the scene the model's keypoints track. Over held-out first frames,
the best correlation (the smaller of the x and y ones) of any keypoint with each object's position
(marker, target, each coin colour; pointer, each button). An object without a keypoint near 1 is
one the strip denoiser cannot locate, so cannot steer by.

    python -m training.probe --model worldmodel/checkpoints/arrows --game coins --keypoints
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np


def good_keys(env) -> set[str]:
    from games.grid import ARROWS, distances_to, move
    others = frozenset(getattr(env, "coins", {}).values()) - {env.target}
    dist = distances_to(env.target, others)
    here = dist[env.marker[1], env.marker[0]]
    out = set()
    for k in ARROWS:
        x, y = move(env.marker, frozenset({k}))
        if (x, y) != env.marker and dist[y, x] >= 0 and dist[y, x] == here - 1:
            out.add(k)
    return out


def probe(model_path: str, game: str, states: int = 60, n: int = 8, denoise_steps: int = 3) -> dict:
    import games
    from games.demonstrators import Demonstrator
    from games.heldout import EVAL_SEEDS
    from overlays import NOOP, Layout, read_overlay, render_overlay
    from planner.backends.bundled import BundledWorldModel
    from planner.vote import choose
    from planner.world_model import ContextClip
    from training.evaluate import episode_inputs

    model = BundledWorldModel(model_path, denoise_steps=denoise_steps)
    env = games.make(game)
    layout = Layout.preset(env.layout_name)
    good = blank = total = vote_good = decisions = 0
    seed_i = 0
    while decisions < states:
        obs, info = env.reset(seed=EVAL_SEEDS[seed_i])
        seed_i += 1
        prompt, goals = episode_inputs(env, info, layout, 0.1)
        demo = Demonstrator(env, np.random.default_rng(seed_i), noise=0.0)
        last, done = NOOP, False
        while not done and decisions < states:
            frame = render_overlay(obs, last, layout)
            ok = good_keys(env.unwrapped)
            r = model(ContextClip(frame[None], fps=10.0), n=n, rollout_length=0.1, prompt=prompt,
                      goals=goals, seed=decisions)
            readings = [read_overlay(f[0], layout) for f in r.frames]
            for rd in readings:
                total += 1
                good += bool(rd.action.keys) and rd.action.keys <= ok
                blank += not rd.action.keys
            d = choose(readings)
            vote_good += bool(d.action.keys) and d.action.keys <= ok
            decisions += 1
            last = demo.act()
            obs, _, term, trunc, _ = env.step(last)
            done = term or trunc
    return {"game": game, "states": decisions, "good": round(good / total, 3), "blank": round(blank / total, 3),
            "vote_good": round(vote_good / decisions, 3)}


def object_positions(env) -> dict[str, tuple[float, float]]:
    """Positions of the objects a policy must locate in the current state of ``env`` (game cells or pixels)."""
    st = env.unwrapped
    if st.game == "buttons":
        out = {"pointer": st.pointer}
        out.update({f"button {lab}": st.button_centre(lab) for lab in st.buttons})
        return out
    out = {"marker": st.marker}
    if st.game == "coins":
        out.update({f"coin {c}": cell for c, cell in st.coins.items()})
    elif st.game == "reach":
        out["target"] = st.target
    return out


def named_position(env):
    """Where the object the prompt names is (coins: the named coin; buttons: the named button), or None."""
    st = env.unwrapped
    if st.game == "coins":
        return st.target
    if st.game == "buttons":
        return st.button_centre(st.target_label)
    return None


def _best_correlation(kp: np.ndarray, p: np.ndarray) -> float:
    """max over keypoints of min(corr(x), corr(y)) between (N, K, 2) keypoints and (N, 2) positions."""
    best = 0.0
    for k in range(kp.shape[1]):
        with np.errstate(invalid="ignore", divide="ignore"):
            r = min(np.corrcoef(kp[:, k, 0], p[:, 0])[0, 1], np.corrcoef(kp[:, k, 1], p[:, 1])[0, 1])
        if np.isfinite(r):
            best = max(best, float(r))
    return round(best, 2)


def keypoint_report(model_path: str, game: str, frames: int = 200) -> dict:
    """Best keypoint-position correlation per object over ``frames`` held-out first frames (and, for a
    model with prompt-conditioned keypoints on a prompted game, theirs with the named object)."""
    import torch

    import games
    from games.heldout import EVAL_SEEDS
    from overlays import NOOP, Layout, render_overlay
    from planner.backends.bundled import resolve_checkpoint
    from training.corpus import resize_frames
    from worldmodel.checkpoints import load

    net, meta = load(resolve_checkpoint(model_path))
    env = games.make(game)
    layout = Layout.preset(env.layout_name)
    shots, where, prompts, named = [], [], [], []
    for i in range(min(frames, len(EVAL_SEEDS))):
        obs, info = env.reset(seed=EVAL_SEEDS[i])
        shots.append(resize_frames(render_overlay(obs, NOOP, layout)[None], tuple(meta["size"]))[0])
        where.append(object_positions(env))
        prompts.append(info.get("prompt") or "")
        named.append(named_position(env))
    x = net.mask_overlay(torch.from_numpy(np.stack(shots)).movedim(-1, 1).float() / 127.5 - 1)
    text = None
    if net.config.text_keypoints and named[0] is not None:
        from worldmodel.text import shared_text_encoder
        enc = shared_text_encoder()
        text = torch.from_numpy(np.stack([enc(p) for p in prompts]))
    with torch.no_grad():
        kp = net.frame_keypoints(x, text)
    if text is not None:
        kp, tk = kp
    kp = kp.view(len(shots), -1, 2).numpy()
    report = {}
    for name in sorted({k for w in where for k in w}):
        rows = [i for i, w in enumerate(where) if name in w]
        report[name] = _best_correlation(kp[rows], np.array([where[i][name] for i in rows], float))
    out = {"game": game, "frames": len(shots), "best_keypoint_correlation": report}
    if text is not None:
        out["text_keypoints_on_named_object"] = _best_correlation(tk.view(len(shots), -1, 2).numpy(),
                                                                  np.array(named, float))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.probe", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="arrows")
    p.add_argument("--game", default="reach")
    p.add_argument("--states", type=int, default=60)
    p.add_argument("--rollouts", type=int, default=8)
    p.add_argument("--denoise-steps", type=int, default=3)
    p.add_argument("--keypoints", action="store_true", help="report which objects the keypoints track instead")
    a = p.parse_args(argv)
    for g in a.game.split(","):
        if a.keypoints:
            print(json.dumps(keypoint_report(a.model, g)))
            continue
        print(json.dumps(probe(a.model, g, a.states, a.rollouts, a.denoise_steps)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
