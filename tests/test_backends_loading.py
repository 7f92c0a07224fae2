"""Loading: hub id / folder / single file, ModelNotFound sentences, device/dtype, speed flags."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from planner import ContextClip  # noqa: E402
from planner.backends.loading import (  # noqa: E402
    DiffusersConfig,
    ModelNotFound,
    load_pipeline,
    resolve_device,
    resolve_dtype,
)
from planner.backends.ltx import LTXBackend, LTXSettings  # noqa: E402
from planner.backends.tiny import tiny_ltx_pipeline  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-ltx")
    tiny_ltx_pipeline().save_pretrained(path)
    return str(path)


def one_sentence(message: str) -> bool:
    return "\n" not in message and message.count(". ") == 0 and "Traceback" not in message


@pytest.mark.parametrize("local_files_only", [True, False])
def test_missing_hub_model_names_the_id_and_the_download_command(local_files_only):
    from diffusers import LTXConditionPipeline

    model = "framepilot-tests/no-such-model"
    with pytest.raises(ModelNotFound) as e:
        load_pipeline(LTXConditionPipeline, DiffusersConfig(model, local_files_only=local_files_only))
    message = str(e.value)
    assert model in message and f"huggingface-cli download {model}" in message and one_sentence(message)


def test_missing_paths_say_what_to_pass(tmp_path):
    from diffusers import LTXConditionPipeline

    for model in (str(tmp_path / "nowhere"), str(tmp_path / "ltx.safetensors"), str(tmp_path)):
        with pytest.raises(ModelNotFound) as e:
            load_pipeline(LTXConditionPipeline, DiffusersConfig(model))
        assert model in str(e.value) and "model_index.json" in str(e.value) and one_sentence(str(e.value))
    with pytest.raises(ModelNotFound, match="no model_index.json"):
        LTXBackend.from_config(DiffusersConfig(str(tmp_path)))


def test_config_validation_is_one_sentence():
    for kwargs, match in [({"model": ""}, "hub id"), ({"model": "a/b", "dtype": "fp8"}, "dtype must be"),
                          ({"model": "a/b", "attention": "flash"}, "attention must be"),
                          ({"model": "a/b", "first_block_cache": 1.5}, "threshold")]:
        with pytest.raises(ValueError, match=match):
            DiffusersConfig(**kwargs)


def test_device_and_dtype_are_automatic():
    if torch.cuda.is_available():
        assert resolve_device(None).type == "cuda" and resolve_dtype(None, resolve_device(None)) == torch.bfloat16
    else:
        assert resolve_device(None).type == "cpu" and resolve_dtype(None, resolve_device(None)) == torch.float32
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16


def test_folder_loads_on_cpu_in_float32_with_sdpa(folder):
    from diffusers import LTXConditionPipeline

    pipe = load_pipeline(LTXConditionPipeline, DiffusersConfig(folder, local_files_only=True))
    assert pipe.transformer.dtype == torch.float32 and pipe.transformer.device.type == "cpu"
    assert pipe._framepilot == {"attention": "sdpa", "first_block_cache": 0.0, "compile": False}
    assert not pipe.transformer.is_cache_enabled


def test_first_block_cache_flag(folder):
    b = LTXBackend.from_config(DiffusersConfig(folder, local_files_only=True, first_block_cache=0.05),
                               LTXSettings(num_inference_steps=3, guidance_scale=1.0))
    assert b.pipe.transformer.is_cache_enabled
    clip = ContextClip(np.random.default_rng(0).integers(0, 256, (9, 40, 40, 3), dtype=np.uint8), fps=25)
    out = b(clip, n=2, rollout_length=0.1, seed=0)
    assert out.frames.shape == (2, 3, 40, 40, 3)


def test_xformers_on_cpu_is_refused_with_a_fix(folder):
    from diffusers import LTXConditionPipeline

    with pytest.raises((ImportError, ValueError), match="sdpa"):
        load_pipeline(LTXConditionPipeline, DiffusersConfig(folder, attention="xformers", local_files_only=True))


def test_single_file_goes_through_from_single_file(tmp_path, folder):
    from diffusers import LTXConditionPipeline

    seen = {}

    class Recording(LTXConditionPipeline):
        @classmethod
        def from_single_file(cls, path, **kwargs):
            seen.update(path=path, **kwargs)
            return LTXConditionPipeline.from_pretrained(kwargs["config"])

    checkpoint = tmp_path / "ltxv-2b-0.9.8-distilled.safetensors"
    checkpoint.write_bytes(b"not read by the recording class")
    pipe = load_pipeline(Recording, DiffusersConfig(str(checkpoint), single_file_config=folder, local_files_only=True))
    assert seen["path"] == str(checkpoint) and seen["config"] == folder and seen["local_files_only"] is True
    assert seen["dtype"] == torch.float32 and pipe.transformer is not None
