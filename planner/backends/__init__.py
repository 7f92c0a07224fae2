"""World-model backends. Heavy ones (diffusers) are imported from their own modules only:

- ``planner.backends.ltx``: LTX-Video (``LTXBackend``), text + context video + goal keyframes.
- ``planner.backends.wan``: Wan first-last-frame (``WanBackend``), text + last frame + one goal.
- ``planner.backends.svd``: Stable Video Diffusion (``SVDBackend``), last frame only.
- ``planner.backends.loading``: ``DiffusersConfig``, ``load_pipeline``, ``ModelNotFound``.
- ``planner.backends.remote``: a model served by ``framepilot serve`` (``RemoteWorldModel``,
  ``--model http://HOST:PORT``).
"""

from __future__ import annotations

import json
import os

BUNDLED_SPECS = ("bundled", "bundled:arrows", "bundled:mouse")
UNTRAINED_SPECS = ("untrained", "untrained:arrows", "untrained:mouse")


def model_family(spec: str) -> str:
    """``"bundled"``, ``"ltx"``, ``"wan"``, ``"svd"`` or ``"remote"`` for a ``--model`` value.

    A local folder says what it is (``framepilot.json``: the bundled model; ``model_index.json``'s
    pipeline class otherwise); a hub id or a single file is recognised by its name (LTX by default).
    """
    if spec in BUNDLED_SPECS or spec in UNTRAINED_SPECS:
        return "bundled"
    if spec.startswith(("http://", "https://")):
        return "remote"
    path = os.path.expanduser(spec)
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "framepilot.json")):
            return "bundled"
        try:
            with open(os.path.join(path, "model_index.json")) as f:
                cls = json.load(f).get("_class_name", "")
        except (OSError, ValueError):
            cls = ""
        name = cls.lower()
    else:
        name = spec.lower()
    if "wan" in name:
        return "wan"
    if "stablevideo" in name or "stable-video" in name or "svd" in name:
        return "svd"
    return "ltx"


def load_world_model(spec: str, layout_name: str = "arrows", denoise_steps: int | None = None,
                     device: str | None = None, frame_steps: int | None = None):
    """The ``WorldModel`` for a ``--model`` value.

    Args:
        spec: ``bundled`` (the shipped checkpoint for ``layout_name``), ``bundled:arrows``,
            ``bundled:mouse``, ``untrained`` (the control: the shipped architecture with fresh random
            weights, seed 0; also ``untrained:arrows``), a checkpoint folder from ``training.train``, a diffusers hub id, a local
            diffusers folder, a single-file checkpoint, or ``http://HOST:PORT``: the model that
            ``framepilot serve`` serves there (token: ``$FRAMEPILOT_TOKEN``).
        layout_name: the overlay layout in use (picks the shipped checkpoint).
        denoise_steps: denoising steps per decision (None: the backend's default).
        device: torch device (None: CUDA when available for diffusers models, CPU for the bundled one).
        frame_steps: the bundled model's Euler steps for the imagined game area (None: its default, 1;
            the overlay strip takes ``denoise_steps``); ignored by diffusers models, which denoise
            the whole video together.
    Raises:
        worldmodel.checkpoints.MissingModel, planner.backends.loading.ModelNotFound: one sentence.
    """
    family = model_family(spec)
    if family == "remote":
        from planner.backends.remote import RemoteWorldModel
        model = RemoteWorldModel(spec)
        model.check_settings(denoise_steps=denoise_steps, frame_steps=frame_steps)
        return model
    if family == "bundled":
        from planner.backends.bundled import BUNDLED_FOR_LAYOUT, BundledWorldModel
        untrained = spec in UNTRAINED_SPECS
        if untrained:
            spec = "bundled" if spec == "untrained" else spec.replace("untrained:", "")
        if spec == "bundled":
            if layout_name not in BUNDLED_FOR_LAYOUT:
                from worldmodel.checkpoints import MissingModel
                raise MissingModel(f"no bundled world model for layout {layout_name!r} (bundled ones: "
                                   f"{', '.join(BUNDLED_FOR_LAYOUT)}); train one with framepilot train or pass --model")
            spec = BUNDLED_FOR_LAYOUT[layout_name]
        kw = {} if denoise_steps is None else {"denoise_steps": denoise_steps}
        if frame_steps is not None:
            kw["frame_steps"] = frame_steps
        if untrained:
            return BundledWorldModel.untrained(spec, seed=0, device=device or "cpu", **kw)
        return BundledWorldModel(spec, device=device or "cpu", **kw)
    from planner.backends.loading import DiffusersConfig, _looks_like_path, _not_found
    if _looks_like_path(spec) and not os.path.exists(os.path.expanduser(spec)):
        raise _not_found(spec)  # before torch and diffusers load: a mistyped path costs no wait
    config = DiffusersConfig(spec, device=device)
    if family == "wan":
        from planner.backends.wan import WanBackend, WanSettings
        return WanBackend.from_config(config, None if denoise_steps is None else WanSettings(num_inference_steps=denoise_steps))
    if family == "svd":
        from planner.backends.svd import SVDBackend, SVDSettings
        return SVDBackend.from_config(config, None if denoise_steps is None else SVDSettings(num_inference_steps=denoise_steps))
    from planner.backends.ltx import LTXBackend, LTXSettings
    settings = None
    if denoise_steps is not None:
        settings = LTXSettings(distilled="distilled" in spec.lower(), num_inference_steps=denoise_steps)
    return LTXBackend.from_config(config, settings)
