"""Diffusion renderer: the CPU warp refined by Stable Diffusion 1.5, a MediaPipe-face ControlNet and LCM-LoRA.

Per frame (docs/diffusion.md):
  warped frame (geometry, identity) -> img2img init at low strength
  rig landmarks re-projected for this frame -> face-mesh drawing -> ControlNet condition
  face oval of this frame -> inpainting mask; outside it the output is the warped frame, pixel for pixel.
Temporal consistency: every frame of a person starts from the same noise (one seed per person), latent cells whose
warped pixels did not change reuse the previous frame's final latents, and `temporal_flicker` measures what is left.
torch and diffusers are imported only inside the functions that need them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from warmchat import face as F
from warmchat.config import RenderConfig, on_hf_space, on_zero_gpu
from warmchat.device import pick_device
from warmchat.errors import BackendUnavailable
from warmchat.face import FaceRig
from warmchat.loading import LOAD_LOCK
from warmchat.render.cpu import CpuRenderer

log = logging.getLogger(__name__)

CPU_HINT = "To render without it, use the CPU renderer: renderer='cpu' (CLI: --renderer cpu)."
LORA_FILE = "pytorch_lora_weights.safetensors"  # the file name diffusers' save_lora_weights writes and LCM-LoRA uses
OVAL_GROW = 1.1  # the face oval scaled about its centre: reaches the jaw edge and the hairline
MIN_FREE_GPU_GIB = 6.0  # SD-1.5 + ControlNet in float16 need ~3 GiB of weights plus activations for a micro-batch
# ZeroGPU duration estimate per call: start-up plus per frame and denoising step at 512 px (H200 slice, float16),
# with headroom; the quota charges what is used, but a request longer than the estimate is cut off.
GPU_START_S = 10.0
GPU_STEP_S = 0.12
GPU_DECODE_S = 0.08

# MediaPipe face-mesh drawing as the ControlNet was trained on (CrucibleAI's LAION-Face annotator): contours only,
# colours given in BGR as the annotator drew them before reversing the channels, lines 2 px at 512 px.
_STYLE_BGR = {
    "FACEMESH_FACE_OVAL": (10, 200, 10),
    "FACEMESH_LEFT_EYE": (180, 200, 10),
    "FACEMESH_LEFT_EYEBROW": (180, 220, 10),
    "FACEMESH_RIGHT_EYE": (10, 200, 180),
    "FACEMESH_RIGHT_EYEBROW": (10, 220, 180),
    "FACEMESH_LIPS": (10, 180, 10),
}
_PUPILS_BGR = {468: (10, 200, 250), 473: (250, 200, 10)}  # right and left iris centres


def face_mesh_drawing(landmarks: np.ndarray, size: int) -> np.ndarray:
    """(size, size, 3) uint8 RGB drawing of face-mesh landmarks in the ControlNetMediaPipeFace style.

    Args:
        landmarks: (P >= 478, 2) pixels; the first 478 are the MediaPipe face mesh (with irises).
    """
    import cv2
    from mediapipe.python.solutions import face_mesh_connections as conn

    canvas = np.zeros((size, size, 3), np.uint8)
    thickness = max(1, round(2 * size / 512))
    pts = np.round(landmarks[:, :2]).astype(np.int32)
    for group, color in _STYLE_BGR.items():
        for a, b in getattr(conn, group):
            cv2.line(canvas, tuple(map(int, pts[a])), tuple(map(int, pts[b])), color, thickness)
    half = max(1, round(2 * size / 512))
    for idx, color in _PUPILS_BGR.items():
        x, y = pts[idx]
        canvas[max(y - half, 0) : y + half, max(x - half, 0) : x + half] = color
    return canvas[:, :, ::-1].copy()


def _polygon_mask(polygons: list[np.ndarray], size: int) -> np.ndarray:
    import cv2

    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(p * 16).astype(np.int32) for p in polygons], 255, lineType=cv2.LINE_8, shift=4)
    return mask > 0


def head_mask(points: np.ndarray, size: int) -> np.ndarray:
    """(size, size) bool: where the renderer may repaint, the frame's face oval grown by `OVAL_GROW`.

    Args:
        points: (P, 2) frame control points (the first 478 are the face mesh), in pixels of a `size` crop.
    """
    oval = points[np.array(F.FACE_OVAL)]
    center = oval.mean(axis=0)
    return _polygon_mask([center + (oval - center) * OVAL_GROW], size)


def soft_head_mask(points: np.ndarray, size: int) -> np.ndarray:
    """(size, size) float32 blend weight in [0, 1]: feathered inwards, exactly 0 outside `head_mask`."""
    import cv2

    hard = head_mask(points, size).astype(np.float32)
    feather = max(1, round(0.02 * size))
    inner = cv2.erode(hard, np.ones((2 * feather + 1, 2 * feather + 1), np.uint8))
    return cv2.GaussianBlur(inner, (0, 0), feather / 2) * hard


def mouth_eye_mask(points: np.ndarray, size: int) -> np.ndarray:
    """(size, size) bool: lips and eyes with a margin of 4% of face height, where frames are meant to change."""
    import cv2

    def ring(upper: tuple[int, ...], lower: tuple[int, ...]) -> np.ndarray:
        return np.concatenate([points[np.array(upper)], points[np.array(lower)][::-1]])

    lips = ring(F.UPPER_OUTER_LIP, F.LOWER_OUTER_LIP)
    eye_r, eye_l = ring(F.EYE_R_UPPER, F.EYE_R_LOWER), ring(F.EYE_L_UPPER, F.EYE_L_LOWER)
    mask = _polygon_mask([lips, eye_r, eye_l], size).astype(np.uint8)
    face_h = float(np.linalg.norm(points[F.FOREHEAD] - points[F.CHIN]))
    r = max(1, round(0.04 * face_h))
    return cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) > 0


def temporal_flicker(frames: np.ndarray, reference: np.ndarray, region: np.ndarray) -> float:
    """Frame-to-frame change the refinement adds beyond the motion itself, in grey levels (0 = none).

    Mean over `region` of |(out[t] - out[t-1]) - (ref[t] - ref[t-1])|: the warp's own motion cancels, so what
    remains is flicker. Measure outside the mouth and eyes, which are meant to change.

    Args:
        frames: (T, H, W, 3) uint8 refined frames.
        reference: (T, H, W, 3) uint8 frames they were refined from (the CPU warp).
        region: (T, H, W) or (H, W) bool pixels to measure.
    """
    out, ref = frames.astype(np.float32), reference.astype(np.float32)
    excess = np.abs(np.diff(out, axis=0) - np.diff(ref, axis=0)).mean(axis=-1)  # (T-1, H, W)
    region = np.broadcast_to(region, frames.shape[:3])
    both = region[1:] & region[:-1]
    return float(excess[both].mean()) if both.any() else 0.0


def person_seed(seed: int, person: str) -> int:
    """One fixed noise seed per person, derived from the user's seed."""
    return int(np.random.SeedSequence([seed, *map(ord, person)]).generate_state(1)[0])


# --- model loading -------------------------------------------------------------------------------------------------

# Not `load_once`: one pipeline per key however it was fetched (local-only or not), found by key in `_refine`.
_PIPELINES: dict[tuple, Any] = {}  # loaded once per process; a ZeroGPU call's forked worker inherits them
_PIPE_LOCK = threading.Lock()  # a pipeline's scheduler keeps per-call state, so one call at a time


def _torch_dtype(name: str, device: str):
    import torch

    if name == "auto":
        name = "float32" if device == "cpu" else "float16"
    return getattr(torch, name)


def _fetch(what: str, model_id: str, field: str, load):
    """Run `load()`; a failure becomes a BackendUnavailable that names the model and the way out."""
    try:
        return load()
    except (OSError, ValueError) as exc:  # diffusers/huggingface_hub raise OSError for missing or unreachable files
        raise BackendUnavailable(
            f"Diffusion renderer: could not load the {what} {model_id!r} ({exc}). Check RenderConfig.{field} "
            f"(a Hub id or a local folder), network access and HF_TOKEN. {CPU_HINT}"
        ) from exc


def _offload_mode(cfg: RenderConfig, device: str) -> str:
    if cfg.offload != "auto":
        return cfg.offload
    if device != "cuda" or on_zero_gpu():  # ZeroGPU moves whole models to the GPU per call by itself
        return "none"
    import torch

    free, _ = torch.cuda.mem_get_info()
    return "model" if free < MIN_FREE_GPU_GIB * 2**30 else "none"


def load_diffusion_pipeline(cfg: RenderConfig, device: str | None = None, local_files_only: bool = False):
    """Load (once per process) the SD-1.5 ControlNet inpainting pipeline with LCM scheduler and fused LCM-LoRA.

    Args:
        cfg: model ids and precision/offload settings.
        device: "cuda", "mps" or "cpu"; default `pick_device()`.
        local_files_only: never download (what `renderer="auto"` uses).
    Returns:
        (key, pipeline): the key finds the pipeline again inside a ZeroGPU call.
    Raises:
        BackendUnavailable: diffusers is missing or a model could not be fetched; the message says which.
    """
    device = device or pick_device()
    key = (cfg.base_model, cfg.controlnet_model, cfg.controlnet_subfolder, cfg.lora_model, device, cfg.dtype)
    with LOAD_LOCK:
        if key in _PIPELINES:
            return key, _PIPELINES[key]
        try:
            from diffusers import ControlNetModel, LCMScheduler, StableDiffusionControlNetInpaintPipeline
        except ImportError as exc:
            raise BackendUnavailable(
                f"Diffusion renderer: {exc}. Install it with `pip install diffusers transformers accelerate peft`. "
                + CPU_HINT
            ) from exc
        dtype = _torch_dtype(cfg.dtype, device)
        if device == "cpu":
            log.warning("diffusion renderer on CPU: expect seconds to minutes per frame at 512 px")
        controlnet = _fetch(
            "ControlNet",
            cfg.controlnet_model,
            "controlnet_model",
            lambda: ControlNetModel.from_pretrained(
                cfg.controlnet_model,
                subfolder=cfg.controlnet_subfolder or None,
                dtype=dtype,
                local_files_only=local_files_only,
            ),
        )
        # No safety checker: it blanks frames on false positives, and the input is the user's own portrait.
        pipe = _fetch(
            "Stable Diffusion 1.5 base model",
            cfg.base_model,
            "base_model",
            lambda: StableDiffusionControlNetInpaintPipeline.from_pretrained(
                cfg.base_model,
                controlnet=controlnet,
                dtype=dtype,
                safety_checker=None,
                feature_extractor=None,
                requires_safety_checker=False,
                local_files_only=local_files_only,
            ),
        )
        pipe.scheduler = LCMScheduler.from_config(pipe.scheduler.config)
        if cfg.lora_model:
            _fetch(
                "LCM-LoRA",
                cfg.lora_model,
                "lora_model",
                lambda: pipe.load_lora_weights(cfg.lora_model, local_files_only=local_files_only),
            )
            pipe.fuse_lora()  # merged into the UNet: no LoRA overhead per step
            pipe.unload_lora_weights()
        offload = _offload_mode(cfg, device)
        if offload == "model":
            pipe.enable_model_cpu_offload()
        elif offload == "sequential":
            pipe.enable_sequential_cpu_offload()
        else:
            pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        log.info(
            "diffusion renderer: %s + ControlNet %s%s + LoRA %s on %s (%s, offload %s)",
            cfg.base_model,
            cfg.controlnet_model,
            f"/{cfg.controlnet_subfolder}" if cfg.controlnet_subfolder else "",
            cfg.lora_model or "none",
            device,
            str(dtype).removeprefix("torch."),
            offload,
        )
        _PIPELINES[key] = pipe
        return key, pipe


def _is_local(model_id: str, filename: str) -> bool:
    """Whether `filename` of a model is on disk: in a local folder, or in the Hugging Face cache."""
    path = Path(model_id).expanduser()
    if path.is_file():
        return True
    if path.is_dir():
        return (path / filename).is_file()
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model_id, filename), str)
    except ValueError:  # not a valid repo id either
        return False


def missing_weights(cfg: RenderConfig) -> list[str]:
    """The configured models whose files are neither a local folder nor in the Hugging Face cache."""
    sub = f"{cfg.controlnet_subfolder}/" if cfg.controlnet_subfolder else ""
    checks = [
        (cfg.base_model, "model_index.json"),
        (cfg.base_model, "unet/config.json"),
        (cfg.controlnet_model, f"{sub}config.json"),
    ]
    if cfg.lora_model:
        checks.append((cfg.lora_model, LORA_FILE))
    missing = []
    for model_id, filename in checks:
        if model_id not in missing and not _is_local(model_id, filename):
            missing.append(model_id)
    return missing


def diffusion_unavailable(cfg: RenderConfig) -> str | None:
    """Why `renderer="auto"` should not pick the diffusion renderer here, or None when it can. Never downloads."""
    import importlib.util

    # The device first and diffusers by lookup only: importing diffusers costs ~3 s of start-up (torch._dynamo).
    if pick_device() != "cuda":
        return "no CUDA GPU here (the diffusion renderer needs one to be practical)"
    if importlib.util.find_spec("diffusers") is None:
        return "diffusers is not installed (pip install diffusers transformers accelerate peft)"
    missing = missing_weights(cfg)
    if missing:
        return (
            f"the weights of {', '.join(missing)} are not downloaded; run once with renderer='diffusion' "
            "(CLI: --renderer diffusion) to fetch them, or preload them on the Space"
        )
    return None


# --- the GPU call --------------------------------------------------------------------------------------------------


@dataclass
class RefineJob:
    """One batch of frames for the GPU, all numpy so it crosses the ZeroGPU process boundary."""

    key: tuple  # finds the pipeline in _PIPELINES
    init: np.ndarray  # (B, R, R, 3) uint8 warped frames at the working resolution
    control: np.ndarray  # (B, R, R, 3) uint8 face-mesh drawings
    mask: np.ndarray  # (B, R, R) bool where to repaint
    static: np.ndarray  # (B, L, L) bool latent cells that take the previous frame's final latents
    prev_latents: np.ndarray | None  # (C, L, L) float32 final latents of the frame before this batch
    seed: int
    config: RenderConfig


@dataclass
class RefineResult:
    images: np.ndarray  # (B, R, R, 3) uint8 refined frames (before compositing)
    last_latents: np.ndarray  # (C, L, L) float32 final latents of the last frame


def gpu_seconds(n_frames: int, cfg: RenderConfig) -> int:
    """The `@spaces.GPU` duration to ask for: start-up plus per-frame denoising and decoding, scaled by area."""
    steps = max(1, int(cfg.steps * cfg.strength))
    area = (cfg.diffusion_size / 512) ** 2
    cfg_factor = 2 if cfg.guidance_scale > 1 else 1
    return int(np.ceil(GPU_START_S + n_frames * area * (steps * GPU_STEP_S * cfg_factor + GPU_DECODE_S)))


def _refine(job: RefineJob) -> RefineResult:
    """Denoise a batch in micro-batches, reuse static latents frame to frame, decode. Runs where the GPU is."""
    import torch
    from PIL import Image

    pipe = _PIPELINES[job.key]
    cfg = job.config
    size = job.init.shape[1]
    images = []
    prev = None
    with _PIPE_LOCK, torch.inference_mode():
        device = pipe._execution_device
        if job.prev_latents is not None:
            prev = torch.from_numpy(job.prev_latents).to(device)
        for i0 in range(0, len(job.init), cfg.micro_batch):
            sl = slice(i0, i0 + cfg.micro_batch)
            n = len(job.init[sl])
            # Identical CPU generators per frame: the same noise for every frame of this person, on any device.
            generators = [torch.Generator("cpu").manual_seed(job.seed) for _ in range(n)]
            latents = pipe(
                prompt=[cfg.prompt] * n,
                image=[Image.fromarray(x) for x in job.init[sl]],
                mask_image=[Image.fromarray(m.astype(np.uint8) * 255) for m in job.mask[sl]],
                control_image=[Image.fromarray(c) for c in job.control[sl]],
                height=size,
                width=size,
                strength=cfg.strength,
                num_inference_steps=cfg.steps,
                guidance_scale=cfg.guidance_scale,
                controlnet_conditioning_scale=cfg.controlnet_scale,
                generator=generators,
                output_type="latent",
                return_dict=False,
            )[0]
            static = torch.from_numpy(job.static[sl]).to(device)
            for j in range(n):
                if prev is not None:
                    latents[j] = torch.where(static[j][None], prev.to(latents.dtype), latents[j])
                prev = latents[j]
            vae = pipe.vae
            decoded = vae.decode(latents.to(vae.dtype) / vae.config.scaling_factor, return_dict=False)[0]
            pixels = ((decoded.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
            images.append(pixels.permute(0, 2, 3, 1).cpu().numpy())
    return RefineResult(images=np.concatenate(images), last_latents=prev.float().cpu().numpy())


def _gpu_duration(job: RefineJob) -> int:
    return gpu_seconds(len(job.init), job.config)


def _on_gpu(fn, duration):
    """`fn` under `@spaces.GPU(duration=...)` on a Hugging Face Space with `spaces` installed, else `fn` itself."""
    if not on_hf_space():
        return fn
    try:
        import spaces
    except ImportError:
        return fn
    return spaces.GPU(duration=duration)(fn)


# Only this function asks ZeroGPU for a GPU; the CPU renderer and everything else never do.
refine_on_gpu = _on_gpu(_refine, _gpu_duration)


# --- the renderer --------------------------------------------------------------------------------------------------


class DiffusionRenderer:
    """Animates one portrait with the CPU warp, then refines the face with diffusion; same interface as CpuRenderer.

    Frames are rendered in order: the temporal state (previous latents) assumes frame t follows frame t-1.
    """

    name = "diffusion"

    def __init__(
        self,
        rig: FaceRig,
        config: RenderConfig | None = None,
        seed: int = 0,
        device: str | None = None,
        local_files_only: bool = False,
    ):
        self.cfg = config or RenderConfig()
        if self.cfg.diffusion_size % 8:
            raise ValueError(f"diffusion_size must be a multiple of 8, got {self.cfg.diffusion_size}")
        self.rig = rig
        self.warp = CpuRenderer(rig)
        self.seed = person_seed(seed, rig.name)
        self._key, pipe = load_diffusion_pipeline(self.cfg, device, local_files_only)
        self._cell = pipe.vae_scale_factor  # pixels per latent cell
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame, e.g. before rendering an unrelated clip."""
        self._prev_init: np.ndarray | None = None  # (R, R, 3) uint8
        self._prev_latents: np.ndarray | None = None  # (C, L, L) float32

    def frame_points(self, expression: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """(P, 2) control-point positions for one frame, in crop pixels."""
        return self.warp.frame_points(expression, pose)

    def render(self, expression: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """One (S, S, 3) uint8 RGB frame for (K,) controls and a (6,) head pose."""
        return self.render_batch(expression[None], pose[None])[0]

    def render_batch(self, expressions: np.ndarray, poses: np.ndarray) -> np.ndarray:
        """(B, S, S, 3) uint8 frames for (B, K) controls and (B, 6) poses, refined in one GPU call."""
        import cv2

        size, work = self.rig.size, self.cfg.diffusion_size
        scale = work / size
        warped = np.stack([self.warp.render(e, p) for e, p in zip(expressions, poses, strict=True)])  # (B, S, S, 3)
        points = [self.frame_points(e, p) for e, p in zip(expressions, poses, strict=True)]
        init = warped  # (B, R, R, 3) at the working resolution
        if work != size:
            init = np.stack([cv2.resize(w, (work, work), interpolation=cv2.INTER_AREA) for w in warped])
        job = RefineJob(
            key=self._key,
            init=init,
            control=np.stack([face_mesh_drawing(p * scale, work) for p in points]),
            mask=np.stack([head_mask(p * scale, work) for p in points]),
            static=self._static_cells(init),
            prev_latents=self._prev_latents,
            seed=self.seed,
            config=self.cfg,
        )
        result = refine_on_gpu(job)
        self._prev_init, self._prev_latents = init[-1], result.last_latents
        refined = result.images
        if work != size:
            refined = np.stack([cv2.resize(r, (size, size), interpolation=cv2.INTER_CUBIC) for r in refined])
        alpha = np.stack([soft_head_mask(p, size) for p in points])[..., None]  # (B, S, S, 1)
        blend = np.round(warped * (1 - alpha) + refined * alpha)
        return np.where(alpha > 0, blend, warped).astype(np.uint8)

    def _static_cells(self, init: np.ndarray) -> np.ndarray:
        """(B, L, L) bool: latent cells where the warped frame did not change since the previous frame.

        A cell counts as changed when any of its pixels moved by more than `static_threshold` grey levels; changed
        cells grow by one cell, since the VAE and UNet see a little beyond each cell.
        """
        import cv2

        b, work = len(init), init.shape[1]
        cells = work // self._cell
        prev = init[:1] if self._prev_init is None else self._prev_init[None]
        before = np.concatenate([prev, init[:-1]])
        diff = np.abs(init.astype(np.int16) - before.astype(np.int16)).max(axis=-1)  # (B, R, R)
        diff = diff[:, : cells * self._cell, : cells * self._cell]
        per_cell = diff.reshape(b, cells, self._cell, cells, self._cell).max(axis=(2, 4))
        changed = np.stack(
            [cv2.dilate((c > self.cfg.static_threshold).astype(np.uint8), np.ones((3, 3), np.uint8)) for c in per_cell]
        )
        static = changed == 0
        if self._prev_latents is None:
            static[0] = False  # nothing to reuse for the very first frame
        return static
