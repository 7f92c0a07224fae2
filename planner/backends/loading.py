"""Loading diffusers video pipelines: hub id, local diffusers folder, or one single-file checkpoint.

One ``DiffusersConfig`` says where the weights are and how to run them (device, dtype, attention
kernel, optional FirstBlockCache and regional ``torch.compile``); ``load_pipeline`` turns it into a
ready pipeline, or raises ``ModelNotFound`` with one sentence that says how to get the weights.

Example models (what their Hugging Face model cards and the diffusers docs say; sizes are the
denoiser's parameters):

- ``Lightricks/LTX-Video-0.9.5`` (2B, 1.9B transformer): diffusers format; image and video
  conditions at any frame (keyframes, 0.9.5+); 8k+1 frames, sides multiples of 32; timestep-aware
  VAE (decode_timestep 0.05, image_cond_noise_scale 0.025); not distilled: guidance about 3-5.
- ``Lightricks/LTX-Video-0.9.7-distilled`` (13B): guidance-distilled: ``guidance_scale=1`` and the
  published 8-step timesteps ``[1000, 993, 987, 981, 975, 909, 725, 0.03]``; same VAE.
- ``Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers`` (14B): ``WanImageToVideoPipeline`` with
  ``last_image`` (first-last-frame to video), UMT5 text encoder, CLIP image encoder, 720p, 16 fps,
  4k+1 frames.
- ``stabilityai/stable-video-diffusion-img2vid-xt``: image to video only (no text), 25 frames at
  576x1024, fps and motion-bucket micro-conditioning.

Single-file LTX releases (e.g. ``ltxv-2b-0.9.8-distilled.safetensors`` in ``Lightricks/LTX-Video``)
load with ``from_single_file``; their text encoder and configs come from ``single_file_config``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from framepilot.errors import ConfigError, MissingModel

EXAMPLE_MODELS = {
    "ltx-2b": "Lightricks/LTX-Video-0.9.5",
    "ltx-13b-distilled": "Lightricks/LTX-Video-0.9.7-distilled",
    "wan-flf2v-14b": "Wan-AI/Wan2.1-FLF2V-14B-720P-diffusers",
    "svd-xt": "stabilityai/stable-video-diffusion-img2vid-xt",
}

# Published few-step schedule for the guidance-distilled LTX checkpoints (0.9.6/0.9.7/0.9.8
# distilled), in the pipeline's 0..1000 timestep units.
LTX_DISTILLED_TIMESTEPS = (1000.0, 993.0, 987.0, 981.0, 975.0, 909.0, 725.0, 0.03)

SINGLE_FILE_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf")
ATTENTION_CHOICES = ("auto", "sdpa", "xformers")
DTYPE_CHOICES = ("bfloat16", "float16", "float32")


class ModelNotFound(MissingModel, FileNotFoundError):
    """The weights are neither on disk nor downloadable right now. One sentence on how to fix it."""


@dataclass
class DiffusersConfig:
    """Where a diffusers video model is and how to run it.

    Args:
        model: a hub id (``"Lightricks/LTX-Video-0.9.5"``), a local diffusers folder (with
            ``model_index.json``), or a single-file checkpoint (``.safetensors``; LTX only).
        device: ``"cuda"``, ``"cuda:1"``, ``"cpu"``, or None for CUDA when available else CPU.
        dtype: ``"bfloat16"``, ``"float16"``, ``"float32"``, or None for bfloat16 on CUDA and
            float32 on CPU.
        attention: ``"auto"`` (xformers when installed and on CUDA, else PyTorch SDPA), ``"sdpa"``
            or ``"xformers"``. Both accept the attention mask LTX's cross-attention passes.
        first_block_cache: FirstBlockCache threshold (diffusers cache hooks); 0 turns it off.
            Around 0.05 skips most of the transformer on steps whose first block barely changes.
        compile: regional ``torch.compile`` of the denoiser's repeated blocks (first call is slow).
        local_files_only: never touch the network; only use the local Hugging Face cache or folder.
        single_file_config: for single-file checkpoints, the hub id or diffusers folder that holds
            the configs, scheduler, tokenizer and text encoder (default: what diffusers infers).
    """

    model: str
    device: str | None = None
    dtype: str | None = None
    attention: str = "auto"
    first_block_cache: float = 0.0
    compile: bool = False
    local_files_only: bool = False
    single_file_config: str | None = None

    def __post_init__(self):
        if not isinstance(self.model, (str, os.PathLike)) or not str(self.model).strip():
            raise ConfigError("model must be a hub id, a diffusers folder or a checkpoint file, got an empty value")
        self.model = str(self.model)
        if self.dtype is not None and self.dtype not in DTYPE_CHOICES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPE_CHOICES)} or None, got {self.dtype!r}")
        if self.attention not in ATTENTION_CHOICES:
            raise ConfigError(f"attention must be one of {', '.join(ATTENTION_CHOICES)}, got {self.attention!r}")
        if not 0.0 <= self.first_block_cache < 1.0:
            raise ConfigError(f"first_block_cache is a threshold in [0, 1), got {self.first_block_cache}")

    @property
    def is_single_file(self) -> bool:
        return self.model.lower().endswith(SINGLE_FILE_SUFFIXES)


def resolve_device(device: str | None):
    """torch.device: the one asked for, else CUDA when available, else CPU."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for but CUDA is not available; use device='cpu' or None")
    return dev


def resolve_dtype(dtype: str | None, device):
    """torch.dtype: the one asked for, else bfloat16 on CUDA and float32 elsewhere."""
    import torch

    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, dtype)


def _looks_like_path(model: str) -> bool:
    # a hub id is "org/name": one slash, no leading "/", ".", "~"
    return (model.startswith(("/", ".", "~")) or "\\" in model or model.count("/") != 1
            or model.lower().endswith(SINGLE_FILE_SUFFIXES) or os.path.exists(model))


def _not_found(model: str, why: str = "") -> ModelNotFound:
    if _looks_like_path(model):
        return ModelNotFound(f"no model at {model!r}{why}; pass a diffusers folder (with model_index.json), "
                             f"a .safetensors checkpoint, or a hub id such as {EXAMPLE_MODELS['ltx-2b']!r}")
    return ModelNotFound(f"model {model!r} is not in the local Hugging Face cache and could not be downloaded; "
                         f"run `huggingface-cli download {model}` on a machine with network access, "
                         f"or pass a local folder")


def load_pipeline(pipeline_cls, config: DiffusersConfig, **components):
    """Load ``pipeline_cls`` as ``config`` says, move it to its device and set its speed options.

    Args:
        pipeline_cls: a diffusers pipeline class (``LTXConditionPipeline``, ...).
        config: where the weights are and how to run them.
        **components: already-built components to use instead of loading them (e.g. a shared
            ``text_encoder``).
    Returns:
        The pipeline, on ``resolve_device(config.device)``; ``pipe._framepilot`` records what was set.
    Raises:
        ModelNotFound: the weights are not on disk and could not be downloaded.
    """
    device = resolve_device(config.device)
    dtype = resolve_dtype(config.dtype, device)
    model = os.path.expanduser(config.model)
    if config.is_single_file:
        if not os.path.isfile(model):
            raise _not_found(config.model)
        if not hasattr(pipeline_cls, "from_single_file"):
            raise ConfigError(f"{pipeline_cls.__name__} cannot load single-file checkpoints; pass a diffusers folder "
                             f"or hub id instead")
        kwargs = dict(dtype=dtype, local_files_only=config.local_files_only, **components)
        if config.single_file_config:
            kwargs["config"] = os.path.expanduser(config.single_file_config)
        try:
            pipe = pipeline_cls.from_single_file(model, **kwargs)
        except OSError as e:
            raise _not_found(config.single_file_config or config.model,
                             "" if config.single_file_config else " (its configs/text encoder)") from e
    else:
        if _looks_like_path(model) and not os.path.isdir(model):
            raise _not_found(config.model)
        if os.path.isdir(model) and not os.path.isfile(os.path.join(model, "model_index.json")):
            raise _not_found(config.model, " (the folder has no model_index.json)")
        try:
            pipe = pipeline_cls.from_pretrained(model, dtype=dtype, local_files_only=config.local_files_only,
                                                **components)
        except OSError as e:
            raise _not_found(config.model) from e
    pipe.to(device)
    pipe.set_progress_bar_config(disable=True)
    pipe._framepilot = configure_denoiser(pipe, config)
    return pipe


def denoiser_of(pipe):
    """The pipeline's transformer or UNet."""
    return getattr(pipe, "transformer", None) or getattr(pipe, "unet")


def configure_denoiser(pipe, config: DiffusersConfig) -> dict:
    """Attention kernel, FirstBlockCache and regional compile on the pipeline's denoiser.

    Returns:
        {"attention": "sdpa"|"xformers", "first_block_cache": float, "compile": bool}
    """
    net = denoiser_of(pipe)
    on_cuda = next(net.parameters()).device.type == "cuda"
    attention = config.attention
    if attention == "auto":
        try:
            import xformers  # noqa: F401
            attention = "xformers" if on_cuda else "sdpa"
        except ImportError:
            attention = "sdpa"
    if attention == "xformers":
        try:
            import xformers  # noqa: F401
        except ImportError as e:
            raise ImportError("attention='xformers' needs xformers: `pip install xformers`, or use "
                              "attention='sdpa'") from e
        if not on_cuda:
            raise ConfigError("xformers attention runs on CUDA only; use attention='sdpa' on CPU")
        if type(net).__name__.startswith("UNet"):
            pipe.enable_xformers_memory_efficient_attention()
        else:
            net.set_attention_backend("xformers")  # the dispatcher's xformers path takes LTX's mask
    # "sdpa": diffusers' default ("native" dispatcher / AttnProcessor2_0) is torch SDPA, mask included.
    if config.first_block_cache > 0:
        from diffusers.hooks import FirstBlockCacheConfig

        net.enable_cache(FirstBlockCacheConfig(threshold=config.first_block_cache))
    if config.compile:
        if getattr(net, "_repeated_blocks", None):
            net.compile_repeated_blocks(dynamic=True)  # regional: each transformer block compiled once
        else:
            net.compile(dynamic=True)  # in place; the UNet has no repeated-block list
    return {"attention": attention, "first_block_cache": config.first_block_cache, "compile": config.compile}
