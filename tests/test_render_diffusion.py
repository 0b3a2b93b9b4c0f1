"""The diffusion renderer end to end with tiny random models loaded through the app's own from_pretrained path."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from tiny_diffusion import build_tiny_models

from warmchat import face as F
from warmchat.config import FaceConfig
from warmchat.controls import INDEX, rest_pose, zeros
from warmchat.errors import BackendUnavailable
from warmchat.render import make_renderer
from warmchat.render.cpu import CpuRenderer
from warmchat.render.diffusion import (
    DiffusionRenderer,
    head_mask,
    missing_weights,
    mouth_eye_mask,
    temporal_flicker,
)

SIZE = 128  # face crop; the tiny models work at 64 px


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU"))]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import torch

    # Kernels this small gain nothing from threads, and on a busy 2-core machine spinning threads cost 10x.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield build_tiny_models(tmp_path_factory.mktemp("tiny_sd"))
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def rig(examples):
    return F.build_rig(examples / "grace_hopper.jpg", "A", FaceConfig(size=SIZE))


def _talking(n: int, sway: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(n, K) expressions with the jaw opening and closing, (n, 6) poses turning by `sway` radians."""
    expr = zeros(n)
    expr[:, INDEX["jawOpen"]] = 0.5 * np.sin(np.linspace(0, np.pi, n))
    pose = rest_pose(n)
    pose[:, 0] = np.linspace(0, sway, n)
    return expr, pose


@pytest.mark.parametrize("device", DEVICES)
def test_frames_have_the_right_shape_and_only_the_face_is_repainted(tiny, rig, device):
    renderer = DiffusionRenderer(rig, tiny, seed=0, device=device)
    expr, pose = _talking(5, sway=0.05)
    frames = renderer.render_batch(expr, pose)
    assert frames.shape == (5, SIZE, SIZE, 3) and frames.dtype == np.uint8
    assert renderer.render(expr[0], pose[0]).shape == (SIZE, SIZE, 3)
    warp = CpuRenderer(rig)
    for frame, e, p in zip(frames, expr, pose, strict=True):
        inside = head_mask(renderer.frame_points(e, p), SIZE)
        expected = warp.render(e, p)
        assert np.array_equal(frame[~inside], expected[~inside])  # background, hair, clothes: the warp exactly
        assert np.abs(frame[inside].astype(int) - expected[inside]).mean() > 1  # the face was refined


def test_same_seed_same_video_other_seed_differs(tiny, rig):
    expr, pose = _talking(3)
    first = DiffusionRenderer(rig, tiny, seed=7).render_batch(expr, pose)
    again = DiffusionRenderer(rig, tiny, seed=7).render_batch(expr, pose)
    other = DiffusionRenderer(rig, tiny, seed=8).render_batch(expr, pose)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_fixed_noise_and_static_latents_keep_the_face_steady(tiny, rig):
    """Outside the mouth and eyes, the refinement adds far less frame-to-frame change than fresh noise per frame."""
    n = 6
    expr, pose = _talking(n)
    warp = CpuRenderer(rig)
    reference = np.stack([warp.render(e, p) for e, p in zip(expr, pose, strict=True)])
    points = [warp.frame_points(e, p) for e, p in zip(expr, pose, strict=True)]
    region = np.stack([head_mask(p, SIZE) & ~mouth_eye_mask(p, SIZE) for p in points])

    steady = DiffusionRenderer(rig, tiny, seed=0).render_batch(expr, pose)
    no_reuse = DiffusionRenderer(rig, replace(tiny, static_threshold=-1.0), seed=0).render_batch(expr, pose)
    fresh = np.stack([DiffusionRenderer(rig, tiny, seed=i).render(expr[i], pose[i]) for i in range(n)])
    f_steady, f_no_reuse, f_fresh = (temporal_flicker(x, reference, region) for x in (steady, no_reuse, fresh))
    assert temporal_flicker(reference, reference, region) == 0.0
    assert f_steady <= f_no_reuse < f_fresh, (f_steady, f_no_reuse, f_fresh)
    assert f_steady < 0.25 * f_fresh, (f_steady, f_fresh)


def test_lcm_lora_is_fused_into_the_unet(tiny):
    from warmchat.render.diffusion import load_diffusion_pipeline

    _, with_lora = load_diffusion_pipeline(tiny, "cpu")
    _, without = load_diffusion_pipeline(replace(tiny, lora_model=""), "cpu")
    name = "down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight"
    fused, plain = with_lora.unet.state_dict()[name], without.unet.state_dict()[name]
    assert fused.shape == plain.shape and not fused.equal(plain)
    assert not any("lora" in key for key in with_lora.unet.state_dict())  # merged, no LoRA layers left per step


def test_a_conversation_renders_with_the_diffusion_renderer(tiny, examples, tmp_path):
    from conftest import decode_video

    from warmchat.config import WarmChatConfig
    from warmchat.pipeline import generate

    cfg = WarmChatConfig(seed=3)
    cfg.face.size = SIZE
    cfg.compose.subtitles = False
    cfg.render = replace(tiny, batch_frames=20)
    result = generate(
        examples / "astronaut.png",
        examples / "grace_hopper.jpg",
        script="A [happy]: Hi there!\nB: Hello.",
        out=tmp_path / "chat.mp4",
        config=cfg,
    )
    assert result.renderer == "diffusion"
    frames = decode_video(result.video, 2 * SIZE, SIZE)
    assert abs(len(frames) - result.n_frames) <= 1


@pytest.mark.skipif(_cuda(), reason="checks the fallback on a machine without CUDA")
def test_auto_uses_the_cpu_warp_without_cuda(tiny, rig, caplog):
    assert missing_weights(tiny) == []  # the weights are there: only the missing GPU sends auto to the CPU
    with caplog.at_level(logging.WARNING, logger="warmchat.render"):
        renderer = make_renderer(rig, "auto", tiny)
    assert isinstance(renderer, CpuRenderer) and renderer.name == "cpu"
    assert "CUDA" in caplog.text


def test_auto_uses_the_cpu_warp_when_weights_are_missing(tiny, rig, caplog, monkeypatch, tmp_path):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on ZeroGPU, where `spaces` reports a GPU
    missing = str(tmp_path / "not-downloaded")
    with caplog.at_level(logging.WARNING, logger="warmchat.render"):
        renderer = make_renderer(rig, "auto", replace(tiny, controlnet_model=missing))
    assert renderer.name == "cpu"
    assert missing in caplog.text


def test_explicit_diffusion_names_the_model_it_could_not_load(tiny, rig, tmp_path):
    missing = str(tmp_path / "no-such-base")
    with pytest.raises(BackendUnavailable, match="no-such-base") as info:
        make_renderer(rig, "diffusion", replace(tiny, base_model=missing))
    assert "--renderer cpu" in str(info.value)


@pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")
def test_auto_picks_diffusion_on_cuda_with_local_weights(tiny, rig):
    import time

    renderer = make_renderer(rig, "auto", tiny)
    assert renderer.name == "diffusion"
    expr, pose = _talking(16)
    renderer.render_batch(expr[:4], pose[:4])  # warm-up
    t0 = time.perf_counter()
    renderer.render_batch(expr, pose)
    print(f"tiny model on CUDA: {(time.perf_counter() - t0) / 16 * 1000:.1f} ms per frame")


def test_the_cpu_path_never_imports_spaces():
    """`spaces` (and so a ZeroGPU request) is only touched on a Space; elsewhere nothing asks for a GPU."""
    code = "import sys, warmchat.pipeline; print('spaces' in sys.modules)"
    env = {k: v for k, v in os.environ.items() if k != "SPACE_ID"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**env, "SPACE_ID": "me/warmchat"},
        check=True,
    )
    assert out.stdout.strip() == "True"
