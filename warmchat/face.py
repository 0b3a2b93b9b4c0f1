"""Portrait intake: read any common image, find the face, crop head and shoulders, and build a `FaceRig`."""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from warmchat.config import FaceConfig
from warmchat.errors import InputError

log = logging.getLogger(__name__)

MAX_SIDE = 2048  # larger uploads are downscaled first: the mesh needs no more and memory stays bounded
MIN_FACE_PX = 64  # faces smaller than this (height in the original image) are too blurry to animate

# MediaPipe face-mesh landmark indices used across stages.
FOREHEAD, CHIN, NOSE_TIP = 10, 152, 1
FACE_OVAL = (
    10,
    338,
    297,
    332,
    284,
    251,
    389,
    356,
    454,
    323,
    361,
    288,
    397,
    365,
    379,
    378,
    400,
    377,
    152,
    148,
    176,
    149,
    150,
    136,
    172,
    58,
    132,
    93,
    234,
    127,
    162,
    21,
    54,
    103,
    67,
    109,
)
LIPS_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
UPPER_INNER_LIP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER_LIP = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
UPPER_OUTER_LIP = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LOWER_OUTER_LIP = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
MOUTH_CORNER_R, MOUTH_CORNER_L = 61, 291  # subject's right (image left), subject's left (image right)
# Eyes: subject's right eye is on the image's left.
EYE_R_UPPER = (246, 161, 160, 159, 158, 157, 173)
EYE_R_LOWER = (7, 163, 144, 145, 153, 154, 155)
EYE_R_CORNERS = (33, 133)
EYE_L_UPPER = (466, 388, 387, 386, 385, 384, 398)
EYE_L_LOWER = (249, 390, 373, 374, 380, 381, 382)
EYE_L_CORNERS = (263, 362)
IRIS_A = tuple(range(468, 473))
IRIS_B = tuple(range(473, 478))
BROW_R = (70, 63, 105, 66, 107, 46, 53, 52, 65, 55)  # outer ... inner
BROW_L = (300, 293, 334, 296, 336, 276, 283, 282, 295, 285)


@dataclass
class FaceRig:
    """A cropped portrait and its face mesh, ready to animate."""

    image: np.ndarray  # (S, S, 3) uint8 RGB crop
    landmarks: np.ndarray  # (478, 3) float32, x/y in crop pixels, z in pixels (same scale, toward camera negative)
    name: str  # "A" or "B": which portrait, for messages
    crop_box: tuple[float, float, float]  # (x0, y0, side) of the crop in the original image's pixels
    source_size: tuple[int, int]  # (width, height) of the (possibly downscaled) original
    n_faces: int  # faces found in the original; the largest was used

    @property
    def size(self) -> int:
        return self.image.shape[0]

    @property
    def face_height(self) -> float:
        """Forehead-to-chin distance in crop pixels."""
        return float(np.linalg.norm(self.landmarks[FOREHEAD, :2] - self.landmarks[CHIN, :2]))


def load_image(source: str | Path | np.ndarray, name: str = "A") -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB: EXIF rotation applied, alpha on white, 16-bit/CMYK/grey converted.

    Raises:
        InputError: the file is missing or is not a readable image.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    field = f"portrait_{name.lower()}"
    if isinstance(source, np.ndarray):
        arr = source
        if arr.ndim == 2:
            arr = np.repeat(arr[..., None], 3, axis=2)
        if arr.shape[2] == 4:
            alpha = arr[..., 3:4].astype(np.float32) / 255.0
            arr = arr[..., :3] * alpha + 255 * (1 - alpha)
        img = Image.fromarray(np.ascontiguousarray(arr[..., :3]).astype(np.uint8))
    else:
        path = Path(source)
        if not path.is_file():
            raise InputError(f"Portrait {name}: file not found: {path}. Upload a JPEG, PNG or WebP photo.", field)
        try:
            img = Image.open(path)
            img.load()
        except (UnidentifiedImageError, OSError) as exc:
            raise InputError(
                f"Portrait {name}: {path.name} is not a readable image ({exc}). Upload a JPEG, PNG or WebP photo.",
                field,
            ) from exc
        img = ImageOps.exif_transpose(img)
        if img.mode in ("I;16", "I;16B", "I;16L", "I"):
            arr16 = np.asarray(img, dtype=np.float32)
            img = Image.fromarray((arr16 / max(arr16.max(), 1.0) * 255).astype(np.uint8))
        if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
            rgba = img.convert("RGBA")
            canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            img = Image.alpha_composite(canvas, rgba)
        img = img.convert("RGB")
    if max(img.size) > MAX_SIDE:
        scale = MAX_SIDE / max(img.size)
        img = img.resize((round(img.width * scale), round(img.height * scale)), Image.Resampling.LANCZOS)
    return np.asarray(img, dtype=np.uint8).copy()


_MESH_LOCK = threading.Lock()  # MediaPipe graphs are not safe to share across threads


@functools.cache
def _face_mesh():
    import mediapipe as mp

    log.info("loading MediaPipe face mesh (refined, 478 landmarks) from the mediapipe wheel")
    return mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, max_num_faces=5, refine_landmarks=True, min_detection_confidence=0.5
    )


def detect_landmarks(image: np.ndarray) -> list[np.ndarray]:
    """All faces in an RGB image as (478, 3) arrays in pixels (z on the x scale), largest first."""
    with _MESH_LOCK:
        result = _face_mesh().process(np.ascontiguousarray(image))
    h, w = image.shape[:2]
    faces = []
    for face in result.multi_face_landmarks or []:
        pts = np.array([(p.x * w, p.y * h, p.z * w) for p in face.landmark], dtype=np.float32)
        faces.append(pts)
    faces.sort(key=lambda p: -np.ptp(p[:, 0]) * np.ptp(p[:, 1]))
    return faces


def _yaw_estimate(lm: np.ndarray) -> float:
    """Head yaw in degrees from the depth difference across the outer eye corners of the 3D mesh."""
    d = lm[263] - lm[33]
    return float(np.degrees(np.arctan2(d[2], d[0])))


def build_rig(source: str | Path | np.ndarray, name: str = "A", config: FaceConfig | None = None) -> FaceRig:
    """Read a portrait, find its largest face and crop head and shoulders to a square of `config.size` pixels.

    Raises:
        InputError: with the portrait's name, for unreadable files, no face, a face too small, cut off, or in profile.
    """
    import cv2

    cfg = config or FaceConfig()
    field = f"portrait_{name.lower()}"
    image = load_image(source, name)
    faces = detect_landmarks(image)
    if not faces:
        raise InputError(
            f"Portrait {name}: no human face found. Use a clear, front-facing photo of one person.", field
        )
    if len(faces) > 1:
        log.warning("portrait %s: %d faces found; using the largest", name, len(faces))
    lm = faces[0]
    h, w = image.shape[:2]
    face_h = float(np.linalg.norm(lm[FOREHEAD, :2] - lm[CHIN, :2]))
    if face_h < MIN_FACE_PX:
        raise InputError(
            f"Portrait {name}: the face is too small ({face_h:.0f} px tall; at least {MIN_FACE_PX} px "
            "needed). Use a closer or larger photo.",
            field,
        )
    x_min, y_min = lm[:, :2].min(axis=0)
    x_max, y_max = lm[:, :2].max(axis=0)
    pad = 0.02 * face_h
    if x_min < -pad or y_min < -pad or x_max > w + pad or y_max > h + pad:
        raise InputError(
            f"Portrait {name}: the face is cut off by the edge of the image. "
            "Use a photo with the whole face inside the frame.",
            field,
        )
    yaw = _yaw_estimate(lm)
    if abs(yaw) > 45:
        raise InputError(
            f"Portrait {name}: the face is turned too far to the side (about {abs(yaw):.0f} degrees; "
            "at most 45). Use a more front-facing photo.",
            field,
        )

    # Square crop around head and shoulders, centred a little below the face centre.
    cx = (x_min + x_max) / 2
    cy = (y_min + y_max) / 2 + 0.12 * face_h
    side = cfg.margin * 1.45 * face_h  # the mesh covers brows to chin; 1.45x adds hair, x margin adds shoulders
    x0, y0 = cx - side / 2, cy - side / 2
    scale = cfg.size / side
    # Affine crop with edge replication where the square leaves the photo.
    m = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]], dtype=np.float64)
    crop = cv2.warpAffine(
        image,
        m,
        (cfg.size, cfg.size),
        flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC,
        borderMode=cv2.BORDER_REPLICATE,
    )
    crop_faces = detect_landmarks(crop)
    if crop_faces:
        landmarks = crop_faces[0]
    else:  # the crop is a plain resample, so the original mesh maps over exactly
        landmarks = np.concatenate([(lm[:, :2] - [x0, y0]) * scale, lm[:, 2:] * scale], axis=1).astype(np.float32)
    return FaceRig(
        image=crop,
        landmarks=landmarks,
        name=name,
        crop_box=(float(x0), float(y0), float(side)),
        source_size=(w, h),
        n_faces=len(faces),
    )
