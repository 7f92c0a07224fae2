"""Checkpoint folders of the bundled world model: where the shipped ones live and their metadata.

A checkpoint folder is a diffusers-style model folder (``config.json`` and
``diffusion_pytorch_model.safetensors`` from ``FramepilotUNet.save_pretrained``) plus
``framepilot.json``: the overlay layout (``Layout.to_dict()``), ``overlay_version``, ``fps``, the
model's frame ``size`` (H, W, strip included), the recorded ``source_shape`` it was trained on,
the ``games``, the training ``steps`` and the training settings. ``load`` checks it against the
running overlay codec, so a model never reads an overlay drawn differently from the one it learnt.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from framepilot.atomic import atomic_write
from framepilot.errors import FramepilotError, MissingModel
from overlays import OVERLAY_VERSION

METADATA_FILE = "framepilot.json"
WEIGHTS_FILE = "diffusion_pytorch_model.safetensors"
BUNDLED_DIR = Path(__file__).resolve().parent / "checkpoints"


def shipped() -> dict[str, dict]:
    """The shipped checkpoints, each described by its own ``framepilot.json``: name (its folder under
    ``worldmodel/checkpoints``) -> that metadata. Adding a checkpoint folder there is all it takes."""
    out = {}
    for meta_path in sorted(BUNDLED_DIR.glob(f"*/{METADATA_FILE}")):
        try:
            out[meta_path.parent.name] = json.loads(meta_path.read_text())
        except (OSError, ValueError) as e:
            raise MissingModel(f"the shipped checkpoint metadata {meta_path} is damaged ({type(e).__name__}); "
                               "reinstall framepilot") from None
    return out


def shipped_for_layout(layout_name: str) -> str:
    """The name of the shipped checkpoint whose overlay layout is ``layout_name`` (the first, by name)."""
    found = [name for name, meta in shipped().items() if meta.get("layout", {}).get("name") == layout_name]
    if not found:
        layouts = sorted({m.get("layout", {}).get("name", "?") for m in shipped().values()})
        raise MissingModel(f"no bundled world model for layout {layout_name!r} (bundled ones serve: "
                           f"{', '.join(layouts)}); train one with framepilot train or pass --model")
    return found[0]


def shipped_for_game(game: str, layout_name: str) -> str:
    """The shipped checkpoint that was trained on ``game`` (its ``framepilot.json`` lists it), else the
    one for the game's layout."""
    for name, meta in shipped().items():
        if game in meta.get("games", ()) and meta.get("layout", {}).get("name") == layout_name:
            return name
    return shipped_for_layout(layout_name)


def bundled_path(name: str) -> Path:
    """Folder of the shipped checkpoint ``name`` (a key of ``shipped()``: ``"arrows"``, ``"mouse"``)."""
    names = shipped()
    if name not in names:
        raise MissingModel(f"no bundled world model named {name!r}; choose one of {', '.join(names)}")
    path = BUNDLED_DIR / name
    if not (path / "config.json").exists():
        raise MissingModel(f"the bundled world model {name!r} is missing from {path}; reinstall framepilot or "
                           f"train it with python -m training.train --out {path}")
    return path


#: the settings a training command is written with (the others are left at their defaults)
COMMAND_FIELDS = ("corpus", "games", "cache", "out", "init_from", "transfer_from", "strip_x0", "steps", "batch",
                  "strip_batch", "text_keypoints", "game_weights", "lr", "seed", "size", "threads")


def _flag_value(v) -> str:
    if isinstance(v, dict):
        return ",".join(f"{k}={w:g}" for k, w in v.items())
    if isinstance(v, (list, tuple)):
        return ",".join(map(str, v))
    return str(v)


def training_command(config: dict) -> str:
    """The ``python -m training.train`` command line that reproduces a run of ``config``."""
    flags = []
    for k in COMMAND_FIELDS:
        v = config.get(k)
        if v is None or v is False:
            continue
        flags.append(f"--{k.replace('_', '-')}" + ("" if v is True else f" {_flag_value(v)}"))
    return "python -m training.train " + " ".join(flags)


def write_metadata(folder: str | Path, *, layout: dict, fps: float, size: tuple[int, int], source_shape, games,
                   steps: int, config: dict, frame_spec: dict | None = None) -> None:
    meta = {"format": "framepilot-worldmodel", "layout": layout, "overlay_version": OVERLAY_VERSION, "fps": fps,
            "size": list(size), "source_shape": list(source_shape) if source_shape else None,
            "frame_spec": frame_spec, "games": list(games),
            "steps": steps, "training": config,
            "training_command": training_command(config)}
    atomic_write(Path(folder) / METADATA_FILE, json.dumps(meta, indent=1))


def read_metadata(folder: str | Path) -> dict:
    folder = Path(folder)
    try:
        meta = json.loads((folder / METADATA_FILE).read_text())
    except FileNotFoundError:
        raise MissingModel(f"{folder} is not a framepilot world model (no {METADATA_FILE}); pass a folder written by "
                           "python -m training.train") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        why = "empty" if not (folder / METADATA_FILE).read_bytes().strip() else getattr(e, "msg", str(e))
        raise MissingModel(f"{folder / METADATA_FILE} is damaged ({why}); restore the checkpoint folder or "
                           "retrain it with python -m training.train") from None
    if not isinstance(meta, dict):
        raise MissingModel(f"{folder / METADATA_FILE} is not a framepilot metadata object; restore the checkpoint "
                           "folder or retrain it")
    if meta.get("overlay_version") != OVERLAY_VERSION:
        raise MissingModel(f"{folder} was trained on overlay version {meta.get('overlay_version')} but this framepilot "
                           f"draws version {OVERLAY_VERSION}; retrain it with python -m training.train")
    return meta


def load(folder: str | Path):
    """(model, metadata) of the checkpoint folder ``folder``, model in eval mode on CPU."""
    from safetensors import SafetensorError

    from worldmodel.model import FramepilotUNet
    meta = read_metadata(folder)
    try:
        model = FramepilotUNet.from_pretrained(str(folder))
    except (OSError, ValueError, RuntimeError, SafetensorError, TypeError, KeyError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise MissingModel(f"could not load the world model in {folder} ({first}); "
                           "restore the checkpoint folder or retrain it") from None
    check_weights(model, folder)
    check_metadata(meta, model, folder)
    return model.eval(), meta


def check_weights(model, folder: str | Path) -> None:
    """Refuse a model with NaN or infinite weights (a diverged or damaged checkpoint)."""
    import torch
    bad, names = 0, []
    for name, t in model.state_dict().items():
        if t.is_floating_point():
            n = int((~torch.isfinite(t)).sum())
            if n:
                bad += n
                names.append(name)
    if bad:
        raise MissingModel(f"{Path(folder) / WEIGHTS_FILE} holds {bad} non-finite weights (in {len(names)} tensors, "
                           f"first {names[0]}); the checkpoint is damaged or its training diverged: restore it or retrain")


def check_metadata(meta: dict, model, folder: str | Path) -> None:
    """Refuse a ``framepilot.json`` that disagrees with the weights it sits beside (size, strip rows,
    fps, layout), naming the field, so a mismatch is one sentence instead of a tensor error later."""
    from overlays import Layout
    where = Path(folder) / METADATA_FILE
    fix = "restore the checkpoint folder or retrain it"
    try:
        size = [int(v) for v in meta["size"]]
        fps = float(meta["fps"])
        layout = Layout.from_dict(meta["layout"], source=str(where))
    except (KeyError, TypeError, ValueError) as e:
        if isinstance(e, FramepilotError):  # a LayoutError names the file already
            raise
        raise MissingModel(f"{where} lacks a valid {e if isinstance(e, KeyError) else 'size, fps or layout'} "
                           f"field; {fix}") from None
    weights = [int(v) for v in model.config.sample_size]
    if size != weights:
        raise MissingModel(f"{where} says size {size} but the weights in {folder} work at {weights}; {fix}")
    if not (math.isfinite(fps) and 0 < fps <= 1000):
        raise MissingModel(f"{where} says fps {meta['fps']}; it must be a positive number of frames per second; {fix}")
    shape = meta.get("source_shape")
    if shape:
        try:
            game_h = int(shape[0]) - layout.strip_height(int(shape[1]))
            rows = round(game_h * size[0] / int(shape[0]))
        except (TypeError, ValueError, IndexError, ZeroDivisionError):
            raise MissingModel(f"{where} has a malformed source_shape {shape!r}; {fix}") from None
        if rows != int(model.config.strip_rows):
            raise MissingModel(f"{where} (layout {layout.name!r}, source_shape {shape}) puts the overlay strip at row "
                               f"{rows} but the weights in {folder} have it at row {model.config.strip_rows}; {fix}")
