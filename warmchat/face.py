"""Portrait intake: read any common image, find the face, crop head and shoulders, segment the person."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from warmchat.config import FaceConfig
from warmchat.errors import InputError
from warmchat.loading import load_once

log = logging.getLogger(__name__)

MAX_SIDE = 2048  # larger uploads are downscaled first: the mesh needs no more and memory stays bounded
MIN_FACE_PX = 64  # faces smaller than this (forehead to chin, in the photo) are too blurry to animate
MAX_YAW_DEG = 45.0  # beyond this the far half of the face is hidden and cannot be animated
UPSCALE_NOTE = 2.5  # crops upscaled more than this look soft; the rig says so in its notes

# MediaPipe face-mesh landmark indices used across stages.
FOREHEAD, CHIN = 10, 152
EAR_R, EAR_L = 234, 454  # the face oval's widest points, just in front of the ears
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
    """A cropped portrait, its face mesh and person mask, ready to animate."""

    image: np.ndarray  # (S, S, 3) uint8 RGB crop
    landmarks: np.ndarray  # (478, 3) float32, x/y in crop pixels, z in pixels (same scale, toward camera negative)
    name: str  # "A" or "B": which portrait, for messages
    crop_box: tuple[float, float, float]  # (x0, y0, side) of the crop in the (possibly downscaled) original's pixels
    source_size: tuple[int, int]  # (width, height) of the (possibly downscaled) original
    n_faces: int  # faces found in the original; the largest was used
    person_mask: np.ndarray | None = None  # (S, S) float32 in [0, 1]: person (1) vs background (0)
    source_scale: float = 1.0  # (possibly downscaled) original pixels per pixel of the uploaded file
    notes: list[str] = field(default_factory=list)  # things the user may want to know (several faces, upscaled)

    @property
    def size(self) -> int:
        return self.image.shape[0]

    @property
    def face_height(self) -> float:
        """Forehead-to-chin distance in crop pixels."""
        return float(np.linalg.norm(self.landmarks[FOREHEAD, :2] - self.landmarks[CHIN, :2]))

    def paste_back(self, frame: np.ndarray, original: np.ndarray) -> np.ndarray:
        """Put a rendered crop back into the photo it was cut from.

        Args:
            frame: (S, S, 3) uint8, a rendered frame of this rig.
            original: (H, W, 3) uint8, the uploaded photo at full resolution or as `load_image` returned it
                (any size with the same aspect ratio works: the crop box is rescaled to it).
        Returns:
            (H, W, 3) uint8: the photo with the crop replaced, feathered at the crop's edges.
        """
        import cv2

        h, w = original.shape[:2]
        s = w / self.source_size[0]
        x0, y0, side = self.crop_box
        k = side * s / self.size  # original pixels per crop pixel
        m = np.array([[k, 0, x0 * s], [0, k, y0 * s]], dtype=np.float64)
        warped = cv2.warpAffine(frame, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        # Feathered square: the crop's border regions are static background, so a soft edge hides the seam.
        feather = max(2, self.size // 40)
        ramp = np.minimum(np.arange(self.size), np.arange(self.size)[::-1]).astype(np.float32)
        edge = np.clip(ramp / feather, 0, 1)
        alpha = cv2.warpAffine(np.outer(edge, edge), m, (w, h), flags=cv2.INTER_LINEAR)[..., None]
        out = original.astype(np.float32) * (1 - alpha) + warped.astype(np.float32) * alpha
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _to_uint8(arr: np.ndarray) -> np.ndarray:
    """8-bit from any integer or float sample format, keeping the exposure (16-bit / 257, floats in [0, 1])."""
    if arr.dtype == np.uint8:
        return arr
    a = arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.floating):
        a = a * 255.0 if a.max(initial=0) <= 1.0 else a
    elif a.max(initial=0) > 255:  # 16-bit samples
        a = a / 257.0
    return np.clip(a + 0.5, 0, 255).astype(np.uint8)


def _array_to_rgb(arr: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a grey, grey+alpha, RGB or RGBA array of any sample format; alpha over white."""
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image array, got shape {arr.shape}")
    arr = _to_uint8(arr)
    color, alpha = (arr[..., :-1], arr[..., -1:]) if arr.shape[2] in (2, 4) else (arr, None)
    if color.shape[2] == 1:
        color = np.repeat(color, 3, axis=2)
    if alpha is not None:
        a = alpha.astype(np.float32) / 255.0
        color = (color.astype(np.float32) * a + 255.0 * (1 - a) + 0.5).astype(np.uint8)
    return np.ascontiguousarray(color)


def _read_file(path: Path, name: str) -> tuple[np.ndarray, float]:
    """Decode an image file to RGB (EXIF rotation applied); returns (array, pixels kept per file pixel)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    field = f"portrait_{name.lower()}"
    if not path.is_file():
        raise InputError(f"Portrait {name}: file not found: {path}. Upload a JPEG, PNG or WebP photo.", field)
    try:
        img = Image.open(path)
        full_w = img.width
        # JPEG can decode straight at 1/2, 1/4 or 1/8 scale: a 50-megapixel phone photo then never sits in memory.
        img.draft("RGB", (MAX_SIDE, MAX_SIDE))
        img.load()
    except Image.DecompressionBombError as exc:
        raise InputError(
            f"Portrait {name}: {path.name} is too large to open safely ({exc}). Use a photo under 150 megapixels.",
            field,
        ) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InputError(
            f"Portrait {name}: {path.name} is not a readable image ({exc}). Upload a JPEG, PNG or WebP photo.",
            field,
        ) from exc
    scale = img.width / full_w
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):  # 16-bit or float greyscale
        return _array_to_rgb(np.asarray(img)), scale
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return _array_to_rgb(np.asarray(img.convert("RGBA"))), scale
    return np.asarray(img.convert("RGB"), dtype=np.uint8), scale  # RGB, L, 1, CMYK, YCbCr, LAB, HSV


def _load(source: str | Path | np.ndarray, name: str) -> tuple[np.ndarray, float]:
    import cv2

    if isinstance(source, np.ndarray):
        try:
            image, scale = _array_to_rgb(source), 1.0
        except ValueError as exc:
            raise InputError(f"Portrait {name}: {exc}", f"portrait_{name.lower()}") from exc
    else:
        image, scale = _read_file(Path(source), name)
    h, w = image.shape[:2]
    if max(h, w) > MAX_SIDE:
        k = MAX_SIDE / max(h, w)
        image = cv2.resize(image, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)
        scale *= image.shape[1] / w
    return image, scale


def load_image(source: str | Path | np.ndarray, name: str = "A") -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB: EXIF rotation applied, alpha on white, 16-bit/CMYK/grey converted,
    downscaled to at most `MAX_SIDE` pixels.

    Raises:
        InputError: the file is missing, is not a readable image, or is absurdly large.
    """
    return _load(source, name)[0]


_MP_LOCK = threading.Lock()  # MediaPipe graphs are not safe to share across threads


@load_once
def _face_mesh():
    import mediapipe as mp

    log.info("loading MediaPipe face mesh (refined, 478 landmarks) from the mediapipe wheel")
    return mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, max_num_faces=5, refine_landmarks=True, min_detection_confidence=0.5
    )


@load_once
def _face_detector():
    import mediapipe as mp

    log.info("loading MediaPipe full-range face detector from the mediapipe wheel")
    return mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)


@load_once
def _segmenter():
    import mediapipe as mp

    log.info("loading MediaPipe selfie segmentation (general model) from the mediapipe wheel")
    return mp.solutions.selfie_segmentation.SelfieSegmentation(model_selection=0)


def detect_landmarks(image: np.ndarray) -> list[np.ndarray]:
    """All faces in an RGB image as (478, 3) arrays in pixels (z on the x scale), largest first."""
    with _MP_LOCK:
        result = _face_mesh().process(np.ascontiguousarray(image))
    h, w = image.shape[:2]
    faces = []
    for face in result.multi_face_landmarks or []:
        pts = np.array([(p.x * w, p.y * h, p.z * w) for p in face.landmark], dtype=np.float32)
        faces.append(pts)
    faces.sort(key=lambda p: -np.ptp(p[:, 0]) * np.ptp(p[:, 1]))
    return faces


def detect_faces(image: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Face boxes (x, y, w, h) in pixels from the full-range detector (small and distant faces too), largest first."""
    with _MP_LOCK:
        result = _face_detector().process(np.ascontiguousarray(image))
    h, w = image.shape[:2]
    boxes = []
    for det in result.detections or []:
        b = det.location_data.relative_bounding_box
        boxes.append((b.xmin * w, b.ymin * h, b.width * w, b.height * h))
    boxes.sort(key=lambda b: -b[2] * b[3])
    return boxes


def segment_person(image: np.ndarray) -> np.ndarray:
    """(H, W) float32 in [0, 1]: how much each pixel belongs to the person (hair, hat, neck and clothes included)."""
    with _MP_LOCK:
        mask = _segmenter().process(np.ascontiguousarray(image)).segmentation_mask
    return np.clip(mask, 0.0, 1.0).astype(np.float32)


def head_angles(lm: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a 3D face mesh, from its ear-to-ear and chin-to-forehead axes.

    Signs follow `warmchat.rig.rotation_matrix`: a mesh rotated there by yaw y reads back as about y here.
    """
    right = lm[EAR_L].astype(np.float64) - lm[EAR_R]
    right /= np.linalg.norm(right)
    down = lm[CHIN].astype(np.float64) - lm[FOREHEAD]
    down -= right * (down @ right)
    down /= np.linalg.norm(down)
    yaw = np.degrees(np.arctan2(-right[2], np.hypot(right[0], right[1])))
    pitch = np.degrees(np.arctan2(down[2], down[1]))
    roll = np.degrees(np.arctan2(right[1], right[0]))
    return float(yaw), float(pitch), float(roll)


def check_face(lm: np.ndarray, image_size: tuple[int, int], name: str = "A") -> None:
    """Raise a specific InputError if this face cannot be animated well: too small, cut off or in profile.

    Args:
        lm: (478, 3) landmarks in pixels of the image they were found in.
        image_size: (width, height) of that image.
    """
    field = f"portrait_{name.lower()}"
    w, h = image_size
    face_h = float(np.linalg.norm(lm[FOREHEAD, :2] - lm[CHIN, :2]))
    if face_h < MIN_FACE_PX:
        raise InputError(
            f"Portrait {name}: the face is too small ({face_h:.0f} px from forehead to chin; "
            f"at least {MIN_FACE_PX} px needed). Use a closer or higher-resolution photo, or crop it around the face.",
            field,
        )
    x_min, y_min = lm[:, :2].min(axis=0)
    x_max, y_max = lm[:, :2].max(axis=0)
    pad = 0.02 * face_h
    if x_min < -pad or y_min < -pad or x_max > w + pad or y_max > h + pad:
        raise InputError(
            f"Portrait {name}: the face is cut off by the edge of the image. "
            "Use a photo with the whole face, forehead to chin, inside the frame.",
            field,
        )
    yaw = head_angles(lm)[0]
    if abs(yaw) > MAX_YAW_DEG:
        raise InputError(
            f"Portrait {name}: the face is turned too far to the side (about {abs(yaw):.0f} degrees; "
            f"at most {MAX_YAW_DEG:.0f}). Use a more front-facing photo.",
            field,
        )


def _find_face(image: np.ndarray, name: str) -> tuple[np.ndarray, int]:
    """The largest face's landmarks and the number of faces; small faces are found by detector, then meshed."""
    import cv2

    faces = detect_landmarks(image)
    boxes = detect_faces(image)  # counts faces the mesh's short-range detector misses, too
    if faces:
        return faces[0], max(len(faces), len(boxes))
    # Faces that are small in a big photo: the full-range detector, then the same on overlapping tiles (each
    # face is larger relative to a tile), so a tiny face is reported as too small rather than as no face.
    h, w = image.shape[:2]
    th, tw = int(0.6 * h), int(0.6 * w)
    for ty in (0, h - th) if not boxes else ():
        for tx in (0, w - tw):
            tile = np.ascontiguousarray(image[ty : ty + th, tx : tx + tw])
            boxes += [(x + tx, y + ty, bw, bh) for x, y, bw, bh in detect_faces(tile)]
    boxes.sort(key=lambda b: -b[2] * b[3])
    field = f"portrait_{name.lower()}"
    if not boxes:
        raise InputError(
            f"Portrait {name}: no human face found. Use a clear, front-facing photo of one person.", field
        )
    x, y, bw, bh = boxes[0]
    if bh < MIN_FACE_PX:
        raise InputError(
            f"Portrait {name}: the face is too small (about {bh:.0f} px tall; at least {MIN_FACE_PX} px needed). "
            "Use a closer or higher-resolution photo, or crop it around the face.",
            field,
        )
    # Re-run the mesh on a square around the detection, big enough for its short-range detector.
    side = 3.0 * max(bw, bh)
    x0, y0 = x + bw / 2 - side / 2, y + bh / 2 - side / 2
    k = 384 / side
    m = np.array([[k, 0, -x0 * k], [0, k, -y0 * k]])
    patch = cv2.warpAffine(image, m, (384, 384), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    faces = detect_landmarks(patch)
    if not faces:
        raise InputError(
            f"Portrait {name}: no human face found that can be tracked. "
            "Use a clear, front-facing photo of one person.",
            field,
        )
    lm = faces[0].copy()
    lm[:, :2] = lm[:, :2] / k + [x0, y0]
    lm[:, 2] /= k
    return lm, len(boxes)


def build_rig(source: str | Path | np.ndarray, name: str = "A", config: FaceConfig | None = None) -> FaceRig:
    """Read a portrait, find its largest face, crop head and shoulders to a square and segment the person.

    Raises:
        InputError: with the portrait's name, for unreadable files, no face, a face too small, cut off, or in profile.
    """
    import cv2

    cfg = config or FaceConfig()
    image, source_scale = _load(source, name)
    h, w = image.shape[:2]
    lm, n_faces = _find_face(image, name)
    check_face(lm, (w, h), name)
    notes = []
    if n_faces > 1:
        notes.append(f"Portrait {name}: {n_faces} faces found; animating the largest one.")
        log.warning(notes[-1])
    face_h = float(np.linalg.norm(lm[FOREHEAD, :2] - lm[CHIN, :2]))

    # Square crop around head and shoulders, centred a little below the face centre.
    x_min, y_min = lm[:, :2].min(axis=0)
    x_max, y_max = lm[:, :2].max(axis=0)
    cx = (x_min + x_max) / 2
    cy = (y_min + y_max) / 2 + 0.12 * face_h
    side = cfg.margin * 1.45 * face_h  # the mesh covers brows to chin; 1.45x adds hair, x margin adds shoulders
    x0, y0 = cx - side / 2, cy - side / 2
    scale = cfg.size / side
    if scale > UPSCALE_NOTE:
        notes.append(
            f"Portrait {name}: the face is small ({face_h:.0f} px tall) and is enlarged {scale:.1f}x, so it will "
            "look soft. A larger photo gives a sharper result."
        )
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
        n_faces=n_faces,
        person_mask=segment_person(crop),
        source_scale=source_scale,
        notes=notes,
    )
