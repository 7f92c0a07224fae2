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
from pathlib import Path

from framepilot.errors import MissingModel
from overlays import OVERLAY_VERSION

METADATA_FILE = "framepilot.json"
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
                   steps: int, config: dict) -> None:
    meta = {"format": "framepilot-worldmodel", "layout": layout, "overlay_version": OVERLAY_VERSION, "fps": fps,
            "size": list(size), "source_shape": list(source_shape) if source_shape else None, "games": list(games),
            "steps": steps, "training": config,
            "training_command": training_command(config)}
    tmp = Path(folder) / (METADATA_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(Path(folder) / METADATA_FILE)


def read_metadata(folder: str | Path) -> dict:
    folder = Path(folder)
    try:
        meta = json.loads((folder / METADATA_FILE).read_text())
    except FileNotFoundError:
        raise MissingModel(f"{folder} is not a framepilot world model (no {METADATA_FILE}); pass a folder written by "
                           "python -m training.train") from None
    except json.JSONDecodeError as e:
        raise MissingModel(f"{folder / METADATA_FILE} is corrupt ({e.msg}); re-save the checkpoint") from None
    if meta.get("overlay_version") != OVERLAY_VERSION:
        raise MissingModel(f"{folder} was trained on overlay version {meta.get('overlay_version')} but this framepilot "
                           f"draws version {OVERLAY_VERSION}; retrain it with python -m training.train")
    return meta


def load(folder: str | Path):
    """(model, metadata) of the checkpoint folder ``folder``, model in eval mode on CPU."""
    from worldmodel.model import FramepilotUNet
    meta = read_metadata(folder)
    try:
        model = FramepilotUNet.from_pretrained(str(folder))
    except (OSError, ValueError, RuntimeError) as e:
        raise MissingModel(f"could not load the world model in {folder} ({str(e).splitlines()[0]}); "
                           "re-save or retrain it") from None
    return model.eval(), meta
