"""World-model backends, and the one registry that turns a ``--model`` value into a ``WorldModel``.

``FAMILIES`` lists each kind of model: its name, how it recognises a ``--model`` value, and how it
loads one. The first family that recognises a value loads it; LTX, last, takes any diffusers hub id
or folder the others did not claim. A new backend is one module and one ``register(Family(...))``.

- ``bundled``: framepilot's own model (``planner.backends.bundled``): ``bundled`` (the shipped
  checkpoint for the layout, each described by its own ``framepilot.json``: ``worldmodel.checkpoints.shipped``),
  ``bundled:NAME``, ``untrained[:NAME]`` (the control) or a checkpoint folder with ``framepilot.json``.
- ``wan``: Wan first-last-frame (``planner.backends.wan``), text + last frame + one goal.
- ``svd``: Stable Video Diffusion (``planner.backends.svd``), last frame only.
- ``ltx``: LTX-Video (``planner.backends.ltx``), text + context video + goal keyframes.
- ``remote``: ``http://HOST:PORT``, a model served by ``framepilot serve`` (``planner.backends.remote``,
  ``RemoteWorldModel``; token: ``$FRAMEPILOT_TOKEN``).

A local diffusers folder is recognised by the pipeline class in its ``model_index.json``; a hub id or
a single ``.safetensors`` file (no hub is reached to ask) by its name.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Callable

UNTRAINED = "untrained"


@dataclass(frozen=True)
class Family:
    """A kind of world model that ``--model`` can name.

    Args:
        name: what ``model_family`` returns (``"bundled"``, ``"ltx"``, ...).
        recognises: ``(spec) -> bool``: whether a ``--model`` value is one of these.
        load: ``(spec, layout_name, denoise_steps, device, frame_steps) -> WorldModel``.
    """

    name: str
    recognises: Callable[[str], bool]
    load: Callable[..., object]


FAMILIES: list[Family] = []


def register(family: Family, before: str | None = None) -> None:
    """Add ``family`` to the registry (before the family named ``before``; else just before ``ltx``,
    which takes whatever no other family claims)."""
    names = [f.name for f in FAMILIES]
    at = names.index(before) if before in names else names.index("ltx") if "ltx" in names else len(FAMILIES)
    FAMILIES.insert(at, family)


def model_family(spec: str) -> str:
    """The name of the family that loads the ``--model`` value ``spec``."""
    return next(f.name for f in FAMILIES if f.recognises(spec))


def load_world_model(spec: str, layout_name: str = "arrows", denoise_steps: int | None = None,
                     device: str | None = None, frame_steps: int | None = None, game: str | None = None):
    """The ``WorldModel`` for a ``--model`` value.

    Args:
        spec: a value one of ``FAMILIES`` recognises (see the module docstring).
        layout_name: the overlay layout in use (picks the shipped checkpoint for ``bundled``).
        game: the bundled game being played, if any: ``bundled`` then takes the shipped checkpoint
            trained on it when there is one.
        denoise_steps: denoising steps per decision (None: the backend's default).
        device: torch device (None: CUDA when available for diffusers models, CPU for the bundled one).
        frame_steps: the bundled model's Euler steps for the imagined game area (None: its default, 1;
            the overlay strip takes ``denoise_steps``); ignored by diffusers models, which denoise
            the whole video together.
    Raises:
        framepilot.errors.MissingModel (``ModelNotFound`` among them): one sentence.
    """
    family = next(f for f in FAMILIES if f.recognises(spec))
    if family.name == "bundled" and spec == "bundled" and game is not None:
        from worldmodel.checkpoints import shipped_for_game
        spec = f"bundled:{shipped_for_game(game, layout_name)}"
    return family.load(spec, layout_name, denoise_steps, device, frame_steps)


# ---- the bundled model --------------------------------------------------------------------------------
def _is_bundled(spec: str) -> bool:
    head = spec.split(":", 1)[0]
    if head in ("bundled", UNTRAINED):
        return True
    path = os.path.expanduser(spec)
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "framepilot.json"))


def _load_bundled(spec, layout_name, denoise_steps, device, frame_steps):
    from planner.backends.bundled import BundledWorldModel
    from worldmodel.checkpoints import shipped_for_layout
    untrained = spec.split(":", 1)[0] == UNTRAINED
    if untrained:
        spec = "bundled" + spec[len(UNTRAINED):]
    name = shipped_for_layout(layout_name) if spec == "bundled" else \
        spec.split(":", 1)[1] if spec.startswith("bundled:") else spec
    kw = {} if denoise_steps is None else {"denoise_steps": denoise_steps}
    if frame_steps is not None:
        kw["frame_steps"] = frame_steps
    if untrained:
        return BundledWorldModel.untrained(name, seed=0, device=device or "cpu", **kw)
    return BundledWorldModel(name, device=device or "cpu", **kw)


# ---- diffusers pipelines ------------------------------------------------------------------------------
#: pipeline classes (``model_index.json``'s ``_class_name``) per family
PIPELINES = {
    "wan": ("WanImageToVideoPipeline", "WanPipeline", "WanVACEPipeline"),
    "svd": ("StableVideoDiffusionPipeline",),
    "ltx": ("LTXConditionPipeline", "LTXPipeline", "LTXImageToVideoPipeline"),
}
#: name fragments of hub ids and single files per family (nothing else can be asked without a hub)
NAME_HINTS = {"wan": ("wan",), "svd": ("stablevideo", "stable-video", "svd"), "ltx": ("ltx",)}


def _pipeline_class(path: str) -> str | None:
    try:
        with open(os.path.join(path, "model_index.json")) as f:
            return json.load(f).get("_class_name")
    except (OSError, ValueError):
        return None


def _recognises(family: str) -> Callable[[str], bool]:
    def recognises(spec: str) -> bool:
        path = os.path.expanduser(spec)
        if os.path.isdir(path):
            cls = _pipeline_class(path)
            if cls is not None:  # a subclass of a known pipeline (PairedImageWanPipeline) by its name
                known = {c for cs in PIPELINES.values() for c in cs}
                return cls in PIPELINES[family] or (cls not in known and any(h in cls.lower() for h in NAME_HINTS[family]))
        return any(hint in spec.lower() for hint in NAME_HINTS[family])
    return recognises


def _diffusers_config(spec, device):
    from planner.backends.loading import DiffusersConfig, _looks_like_path, _not_found
    if _looks_like_path(spec) and not os.path.exists(os.path.expanduser(spec)):
        raise _not_found(spec)  # before torch and diffusers load: a mistyped path costs no wait
    return DiffusersConfig(spec, device=device)


def _load_wan(spec, layout_name, denoise_steps, device, frame_steps):
    from planner.backends.wan import WanBackend, WanSettings
    return WanBackend.from_config(_diffusers_config(spec, device),
                                  None if denoise_steps is None else WanSettings(num_inference_steps=denoise_steps))


def _load_svd(spec, layout_name, denoise_steps, device, frame_steps):
    from planner.backends.svd import SVDBackend, SVDSettings
    return SVDBackend.from_config(_diffusers_config(spec, device),
                                  None if denoise_steps is None else SVDSettings(num_inference_steps=denoise_steps))


def _load_ltx(spec, layout_name, denoise_steps, device, frame_steps):
    from planner.backends.ltx import LTXBackend, LTXSettings
    config = _diffusers_config(spec, device)
    settings = None
    if denoise_steps is not None:
        settings = LTXSettings(distilled="distilled" in spec.lower(), num_inference_steps=denoise_steps)
    return LTXBackend.from_config(config, settings)


def _load_remote(spec, layout_name, denoise_steps, device, frame_steps):
    from planner.backends.remote import RemoteWorldModel
    model = RemoteWorldModel(spec)
    model.check_settings(denoise_steps=denoise_steps, frame_steps=frame_steps)
    return model


FAMILIES.extend([
    Family("remote", lambda spec: spec.startswith(("http://", "https://")), _load_remote),
    Family("bundled", _is_bundled, _load_bundled),
    Family("wan", _recognises("wan"), _load_wan),
    Family("svd", _recognises("svd"), _load_svd),
    Family("ltx", lambda spec: True, _load_ltx),  # the default: any other hub id, folder or file
])
