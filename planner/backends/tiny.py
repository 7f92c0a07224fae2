"""Tiny random-weight diffusers pipelines built from local configs (no hub): the importable dummies
of the diffusers backends, for tests and the benchmark's CPU smoke run.

They keep the real models' shape rules (LTX: 32x spatial and 8x temporal compression, T5 prompt
embeddings, timestep-conditioned VAE; Wan: 4x temporal, CLIP image embeds of first and last frame;
SVD: CLIP image embedding, fps micro-conditioning) with widths of a few channels. Save one with
``save_pretrained(folder)`` and load it back through ``planner.backends.loading`` like real weights.
"""

from __future__ import annotations

WORDS = "press hold release the left right up down key move mouse click jump fire player game".split()


def tiny_t5_parts(d_model: int = 16):
    """A T5 encoder and a T5 tokenizer built from local configs only."""
    from transformers import T5Config, T5EncoderModel, T5TokenizerFast

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)] + [("\u2581" + w, -1.0) for w in WORDS]
    tokenizer = T5TokenizerFast(vocab=vocab, extra_ids=0)
    config = T5Config(vocab_size=len(vocab), d_model=d_model, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                      relative_attention_num_buckets=8, relative_attention_max_distance=16, dropout_rate=0.0,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    return T5EncoderModel(config).eval(), tokenizer


def tiny_ltx_pipeline(seed: int = 0, timestep_conditioning: bool = True):
    """LTXConditionPipeline with the real compression (32x spatial, 8x temporal) and tiny widths."""
    import torch
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXConditionPipeline,
        LTXVideoTransformer3DModel,
    )

    torch.manual_seed(seed)
    text_encoder, tokenizer = tiny_t5_parts(16)
    transformer = LTXVideoTransformer3DModel(
        in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=2, attention_head_dim=8,
        cross_attention_dim=16, num_layers=2, caption_channels=16, qk_norm="rms_norm_across_heads")
    vae = AutoencoderKLLTXVideo(
        in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, True, False),
        decoder_spatio_temporal_scaling=(True, True, True, False), decoder_inject_noise=(False,) * 5,
        upsample_residual=(False,) * 4, upsample_factor=(1,) * 4, timestep_conditioning=timestep_conditioning,
        patch_size=4, patch_size_t=1, encoder_causal=True, decoder_causal=False)
    # random latent statistics so normalisation is exercised
    vae.latents_mean.copy_(torch.randn(8) * 0.1)
    vae.latents_std.copy_(1 + torch.rand(8))
    scheduler = FlowMatchEulerDiscreteScheduler()
    return LTXConditionPipeline(scheduler=scheduler, vae=vae.eval(), text_encoder=text_encoder, tokenizer=tokenizer,
                                transformer=transformer.eval())


def tiny_clip_vision(image_size: int = 32, hidden: int = 16, projection: int | None = None):
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModel,
        CLIPVisionModelWithProjection,
    )

    config = CLIPVisionConfig(hidden_size=hidden, projection_dim=projection or hidden, num_hidden_layers=2,
                              num_attention_heads=2, image_size=image_size, intermediate_size=32,
                              patch_size=image_size // 4)
    model = (CLIPVisionModelWithProjection if projection else CLIPVisionModel)(config).eval()
    processor = CLIPImageProcessor(crop_size={"height": image_size, "width": image_size},
                                   size={"shortest_edge": image_size})
    return model, processor


def tiny_wan_pipeline(seed: int = 0, image_encoder: bool = True):
    """WanImageToVideoPipeline shaped like Wan2.1 FLF2V (CLIP image embeds of first and last frame)."""
    import torch
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanImageToVideoPipeline,
        WanTransformer3DModel,
    )

    torch.manual_seed(seed)
    text_encoder, tokenizer = tiny_t5_parts(16)
    vae = AutoencoderKLWan(base_dim=3, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True], latents_mean=[0.1, -0.1, 0.0, 0.2],
                           latents_std=[1.5, 2.0, 1.0, 2.5])
    clip, processor = tiny_clip_vision(32, 16) if image_encoder else (None, None)
    patches = 4 * 4 + 1  # CLIP tokens per image (4x4 patches + class token)
    transformer = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=4 + 4 + 4, out_channels=4,
        text_dim=16, freq_dim=32, ffn_dim=32, num_layers=1, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32, image_dim=16 if image_encoder else None,
        pos_embed_seq_len=2 * patches if image_encoder else None)
    return WanImageToVideoPipeline(tokenizer=tokenizer, text_encoder=text_encoder, image_encoder=clip,
                                   image_processor=processor, transformer=transformer.eval(), vae=vae.eval(),
                                   scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0))


def tiny_svd_pipeline(seed: int = 0):
    import torch
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )

    torch.manual_seed(seed)
    unet = UNetSpatioTemporalConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=8, out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"), cross_attention_dim=16,
        num_attention_heads=(2, 4), projection_class_embeddings_input_dim=3 * 8, addition_time_embed_dim=8)
    vae = AutoencoderKLTemporalDecoder(block_out_channels=[32, 64], in_channels=3, out_channels=3,
                                       down_block_types=["DownEncoderBlock2D", "DownEncoderBlock2D"],
                                       latent_channels=4, layers_per_block=1)
    clip, processor = tiny_clip_vision(224, 16, projection=16)  # the pipeline resizes to 224 itself
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", interpolation_type="linear",
        num_train_timesteps=1000, prediction_type="v_prediction", sigma_max=700.0, sigma_min=0.002, steps_offset=1,
        timestep_spacing="leading", timestep_type="continuous", use_karras_sigmas=True)
    return StableVideoDiffusionPipeline(vae=vae.eval(), image_encoder=clip, unet=unet.eval(), scheduler=scheduler,
                                        feature_extractor=processor)
