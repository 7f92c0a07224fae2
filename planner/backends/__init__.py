"""World-model backends. Heavy ones (diffusers) are imported from their own modules only:

- ``planner.backends.ltx``: LTX-Video (``LTXBackend``), text + context video + goal keyframes.
- ``planner.backends.wan``: Wan first-last-frame (``WanBackend``), text + last frame + one goal.
- ``planner.backends.svd``: Stable Video Diffusion (``SVDBackend``), last frame only.
- ``planner.backends.loading``: ``DiffusersConfig``, ``load_pipeline``, ``ModelNotFound``.
"""
