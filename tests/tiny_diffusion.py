"""Tiny random SD-1.5-shaped models saved like the Hub repos they stand in for, so tests load them by path.

Following diffusers' own tests: a UNet and ControlNet with two blocks of 8/16 channels, a two-block VAE, a
2-layer CLIP text encoder with a tokenizer built from a byte-level vocabulary written here (no Hub), and a random
LoRA on the UNet's attention saved with `save_lora_weights` as LCM-LoRA is.
"""

from __future__ import annotations

import json
from pathlib import Path

from warmchat.config import RenderConfig


def _byte_chars() -> list[str]:
    """GPT-2/CLIP byte-level alphabet: one printable character per byte value."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


def _write_tokenizer(path: Path) -> None:
    """A CLIP BPE vocabulary of single bytes (no merges) with CLIP's special tokens."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for c in _byte_chars():
        vocab[c] = len(vocab)
        vocab[c + "</w>"] = len(vocab)
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n")


def build_tiny_models(root: Path, seed: int = 0) -> RenderConfig:
    """Write base/, controlnet/diffusion_sd15/ and lora/ under `root`; returns a RenderConfig that points at them."""
    import torch
    from diffusers import (
        AutoencoderKL,
        ControlNetModel,
        PNDMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    channels, groups = (8, 16), 4
    blocks = {"down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D")}
    unet = UNet2DConditionModel(
        block_out_channels=channels,
        layers_per_block=1,
        sample_size=32,
        in_channels=4,
        out_channels=4,
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=2,
        norm_num_groups=groups,
        **blocks,
    )
    controlnet = ControlNetModel(
        block_out_channels=channels,
        layers_per_block=1,
        in_channels=4,
        cross_attention_dim=32,
        attention_head_dim=2,
        norm_num_groups=groups,
        conditioning_embedding_out_channels=(8, 16),
        **blocks,
    )
    vae = AutoencoderKL(
        block_out_channels=channels,
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4,
        norm_num_groups=groups,
    )
    _write_tokenizer(root / "tok")
    tokenizer = CLIPTokenizer.from_pretrained(root / "tok", model_max_length=77)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=77,
            bos_token_id=0,
            eos_token_id=1,
            pad_token_id=1,
        )
    )
    scheduler = PNDMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True, steps_offset=1
    )
    base = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    base.save_pretrained(root / "base")
    controlnet.save_pretrained(root / "controlnet" / "diffusion_sd15")
    unet.add_adapter(
        LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"], init_lora_weights=False)
    )
    lora = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableDiffusionPipeline.save_lora_weights(root / "lora", unet_lora_layers=lora, safe_serialization=True)
    return RenderConfig(
        renderer="diffusion",
        base_model=str(root / "base"),
        controlnet_model=str(root / "controlnet"),
        controlnet_subfolder="diffusion_sd15",
        lora_model=str(root / "lora"),
        prompt="a photo of a person talking",
        steps=4,
        strength=0.5,  # int(4 * 0.5) = 2 denoising steps
        diffusion_size=64,
        micro_batch=4,
    )
