"""Portrait intake: read any common image, find the face, crop head and shoulders, segment the person."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from warmchat.config import FaceConfig, LimitsConfig
from warmchat.errors import InputError
from warmchat.loading import load_once

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

log = logging.getLogger(__name__)

MAX_SIDE = 2048  # larger uploads are downscaled first: the mesh needs no more and memory stays bounded
MIN_FACE_PX = 64  # faces smaller than this (forehead to chin, in the photo) are too blurry to animate
MAX_YAW_DEG = 45.0  # beyond this the far half of the face is hidden and cannot be animated
UPSCALE_NOTE = 2.5  # crops upscaled more than this look soft; the rig says so in its notes
# Is it a human face? Two independent measures on a face-aligned crop around the mesh (docs/faces.md has the labelled
# set they were chosen on): the short-range detector's confidence (people 0.80-0.97; animals, drawings 0.52-0.75) and
# how well the mesh agrees with the mesh of the mirrored crop (people <= 0.012 face heights; others >= 0.016). The mesh
# regressor fits a human shape to anything it is given, so its own proportions do not tell a cat from a person; its
# stability under mirroring does.
MIN_DETECTOR_SCORE = 0.78
MAX_MIRROR_ERROR = 0.0145  # face heights, mean distance from each landmark to the mirrored mesh ...
MIRROR_SLACK = 0.1  # ... plus this x (score - 0.8): small, blurry real faces jitter more but the detector is sure
LIKENESS_CROP = 256  # pixels: side of the face-aligned crop, 2 face heights across
MIN_SMALL_FACE_SCORE = 0.7  # below MIN_FACE_PX only a detection this sure is called "too small", else "no face"
TIGHT_MARGIN = 1.1  # a photo without room for the crop's margin gets one this tight (x 1.45 face heights) ...
PAD_RAMP = 0.03  # ... and what is still outside the photo is mirrored, blurring fully over this x the crop's side
PAD_BLUR = 0.06  # Gaussian sigma of that blur, x the crop's side
UPRIGHT_MAX_ROLL_DEG = 60.0  # a face rolled further than this is taken to be a sideways or upside-down photo

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
    source_size: tuple[int, int]  # (width, height) of the (possibly downscaled) original, after `quarter_turns`
    n_faces: int  # faces found in the original; the largest was used
    person_mask: np.ndarray | None = None  # (S, S) float32 in [0, 1]: person (1) vs background (0)
    source_scale: float = 1.0  # (possibly downscaled) original pixels per pixel of the uploaded file
    notes: list[str] = field(default_factory=list)  # things the user may want to know (several faces, upscaled)
    quarter_turns: int = 0  # the upload was turned this many x 90 degrees counterclockwise (np.rot90) to stand upright

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
            (H', W', 3) uint8: the photo turned upright as the rig was (`quarter_turns`), with the crop replaced,
            feathered at the crop's edges.
        """
        import cv2

        original = np.ascontiguousarray(np.rot90(original, self.quarter_turns))
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
    """8-bit from any sample format, keeping the exposure: 16-bit / 257, floats in [0, 1] x 255.

    The sample format decides, not the values, so a dark 16-bit photo stays dark. Only 32/64-bit integers (which
    carry no bit depth of their own) are taken as 16-bit when any value exceeds 255.
    """
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == np.bool_:
        return arr.astype(np.uint8) * 255
    a = arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.floating):
        a = np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=0.0)
        a = a * 255.0 if a.max(initial=0) <= 1.0 else a
    elif arr.dtype in (np.uint16, np.int16) or a.max(initial=0) > 255:
        a = a / 257.0
    return np.clip(a + 0.5, 0, 255).astype(np.uint8)


def _array_to_rgb(arr: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a grey, grey+alpha, RGB or RGBA array of any sample format; alpha over white."""
    arr = np.asarray(arr)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4) or min(arr.shape[:2]) < 1:
        raise ValueError(f"expected an (H, W), (H, W, 3) or (H, W, 4) image array, got shape {arr.shape}")
    arr = _to_uint8(arr)
    color, alpha = (arr[..., :-1], arr[..., -1:]) if arr.shape[2] in (2, 4) else (arr, None)
    if color.shape[2] == 1:
        color = np.repeat(color, 3, axis=2)
    if alpha is not None:
        a = alpha.astype(np.float32) / 255.0
        color = (color.astype(np.float32) * a + 255.0 * (1 - a) + 0.5).astype(np.uint8)
    return np.ascontiguousarray(color)


def _pil_to_rgb(img) -> np.ndarray:
    """(H, W, 3) uint8 RGB from a decoded PIL image of any mode, through the same conversions as arrays.

    Every path (file, PIL image, array) ends in `_array_to_rgb`, so 16-bit grey, palette, CMYK and alpha look the
    same whichever way a portrait arrives.
    """
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):  # 16-bit greyscale: the sample format says 16 bits
        return _array_to_rgb(np.asarray(img).astype(np.uint16))
    if img.mode in ("I", "F"):  # 32-bit int or float greyscale: `_to_uint8` reads the range from the values
        return _array_to_rgb(np.asarray(img))
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        return _array_to_rgb(np.asarray(img.convert("RGBA")))
    return _array_to_rgb(np.asarray(img.convert("RGB")))  # RGB, L, 1, CMYK, YCbCr, LAB, HSV


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.0f} MB" if n >= 10e6 else f"{n / 1e6:.1f} MB"


def _too_many_pixels(name: str, what: str, w: int, h: int, limits: LimitsConfig, field: str) -> InputError:
    return InputError(
        f"Portrait {name}: {what} is too large ({w} x {h} = {w * h / 1e6:.0f} megapixels; "
        f"at most {limits.image_pixels / 1e6:.0f}). Use a smaller photo.",
        field,
    )


def _read_file(path: Path, name: str, limits: LimitsConfig) -> tuple[np.ndarray, float]:
    """Decode an image file to RGB (EXIF rotation applied); returns (array, pixels kept per file pixel).

    Size limits are checked before anything is decoded: the file's length, then the pixel count in its header.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    field = f"portrait_{name.lower()}"
    if not path.is_file():
        raise InputError(f"Portrait {name}: file not found: {path}. Upload a JPEG, PNG or WebP photo.", field)
    n_bytes = path.stat().st_size
    if n_bytes == 0:
        raise InputError(f"Portrait {name}: the file is empty ({path.name}). Upload a JPEG, PNG or WebP photo.", field)
    if n_bytes > limits.image_bytes:
        raise InputError(
            f"Portrait {name}: the file is too large ({_megabytes(n_bytes)}; at most "
            f"{_megabytes(limits.image_bytes)}). Use a smaller photo or save it as JPEG.",
            field,
        )
    unreadable = (
        f"Portrait {name}: {path.name} is not an image we can read (PNG, JPEG, WebP, GIF, BMP, TIFF). "
        "Upload a photo in one of these formats."
    )
    try:
        # `open` reads only the header: the size is known before a single pixel is decoded.
        img = Image.open(path)
        w, h = img.size
        if w * h > limits.image_pixels:
            raise _too_many_pixels(name, path.name, w, h, limits, field)
        # JPEG can decode straight at 1/2, 1/4 or 1/8 scale: a 50-megapixel phone photo then never sits in memory.
        img.draft("RGB", (MAX_SIDE, MAX_SIDE))
        img.load()
    except Image.DecompressionBombError as exc:  # Pillow's own guard, for a limit set above its threshold
        raise InputError(
            f"Portrait {name}: {path.name} is too large to open safely ({exc}). Use a smaller photo.", field
        ) from exc
    except UnidentifiedImageError as exc:
        raise InputError(unreadable, field) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # truncated or corrupt data after a valid header
        raise InputError(f"{unreadable[:-1]} ({exc}).", field) from exc
    scale = img.width / w
    try:
        img = ImageOps.exif_transpose(img)
    except (OSError, ValueError, TypeError, KeyError, SyntaxError) as exc:  # malformed EXIF: keep the pixels as stored
        log.warning("portrait %s: ignoring unreadable EXIF orientation in %s: %s", name, path.name, exc)
    return _pil_to_rgb(img), scale


def _load(
    source: str | Path | np.ndarray | PILImage, name: str, limits: LimitsConfig | None = None
) -> tuple[np.ndarray, float]:
    import cv2

    limits = limits or LimitsConfig()
    field = f"portrait_{name.lower()}"
    if source is None:
        raise InputError(f"Portrait {name}: no image was given. Upload a JPEG, PNG or WebP photo.", field)
    if isinstance(source, (str, os.PathLike)):
        image, scale = _read_file(Path(source), name, limits)
    else:
        is_pil = hasattr(source, "getexif") and hasattr(source, "mode")  # a PIL image, without importing PIL here
        shape = (source.height, source.width) if is_pil else np.shape(source)
        if len(shape) < 2:
            raise InputError(f"Portrait {name}: expected an image, got {type(source).__name__}.", field)
        h, w = shape[:2]
        if w * h > limits.image_pixels:
            raise _too_many_pixels(name, "the image", w, h, limits, field)
        try:
            if is_pil:
                from PIL import ImageOps

                image, scale = _pil_to_rgb(ImageOps.exif_transpose(source)), 1.0
            else:
                image, scale = _array_to_rgb(source), 1.0
        except (ValueError, TypeError, OSError) as exc:  # a wrong shape or dtype; a lazily opened image that fails
            raise InputError(f"Portrait {name}: {exc}", field) from exc
    h, w = image.shape[:2]
    if max(h, w) > MAX_SIDE:
        k = MAX_SIDE / max(h, w)
        image = cv2.resize(image, (round(w * k), round(h * k)), interpolation=cv2.INTER_AREA)
        scale *= image.shape[1] / w
    return image, scale


def load_image(
    source: str | Path | np.ndarray | PILImage, name: str = "A", limits: LimitsConfig | None = None
) -> np.ndarray:
    """Read an image as (H, W, 3) uint8 RGB: EXIF rotation applied, alpha on white, 16-bit/CMYK/grey/palette
    converted, downscaled to at most `MAX_SIDE` pixels. Files, PIL images and arrays go through the same conversions.

    Args:
        source: a file path (what the app passes for uploads), a PIL image, or an (H, W[, C]) array.
        name: "A" or "B", for messages.
        limits: file size (`image_bytes`) and pixel count (`image_pixels`) limits; default `LimitsConfig()`.
    Raises:
        InputError: the file is missing, empty, not an image, damaged, or over the size limits.
    """
    return _load(source, name, limits)[0]


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
def _near_face_detector():
    import mediapipe as mp

    # A low threshold: the likeness check wants the score of whatever is there, and decides itself.
    log.info("loading MediaPipe short-range face detector from the mediapipe wheel")
    return mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.2)


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


def _detections(image: np.ndarray, detector=None) -> list[tuple[float, float, float, float, float]]:
    """(x, y, w, h, score) boxes in pixels, largest first."""
    with _MP_LOCK:
        result = (detector or _face_detector()).process(np.ascontiguousarray(image))
    h, w = image.shape[:2]
    boxes = []
    for det in result.detections or []:
        b = det.location_data.relative_bounding_box
        boxes.append((b.xmin * w, b.ymin * h, b.width * w, b.height * h, float(det.score[0])))
    boxes.sort(key=lambda b: -b[2] * b[3])
    return boxes


def detect_faces(image: np.ndarray) -> list[tuple[float, float, float, float]]:
    """Face boxes (x, y, w, h) in pixels from the full-range detector (small and distant faces too), largest first."""
    return [b[:4] for b in _detections(image)]


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


@dataclass
class FaceLikeness:
    """How much a found face mesh looks like a real human face (see `face_likeness`)."""

    detector_score: float  # short-range detector confidence on the face-aligned crop, 0 if it saw nothing
    mirror_error: float  # face heights: mesh vs the mesh of the mirrored crop (inf if that found nothing)

    @property
    def is_human(self) -> bool:
        tolerance = MAX_MIRROR_ERROR + MIRROR_SLACK * max(0.0, self.detector_score - 0.8)
        return self.detector_score >= MIN_DETECTOR_SCORE and self.mirror_error <= tolerance


def _aligned_crop(image: np.ndarray, lm: np.ndarray, side_faces: float, out: int) -> np.ndarray:
    """A square crop `side_faces` face heights across, centred on the mesh and turned so the face is upright."""
    import cv2

    xy = lm[:, :2].astype(np.float64)
    up = xy[FOREHEAD] - xy[CHIN]
    face_h = float(np.linalg.norm(up))
    up /= max(face_h, 1e-6)
    right = np.array([-up[1], up[0]])
    s = out / (side_faces * max(face_h, 1e-6))
    m = s * np.array([right, -up])  # rows: crop x along the face's right, crop y along its down
    t = out / 2 - m @ xy.mean(axis=0)
    affine = np.hstack([m, t[:, None]])
    flags = cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR
    return cv2.warpAffine(image, affine, (out, out), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def face_likeness(image: np.ndarray, lm: np.ndarray) -> FaceLikeness:
    """Score a face mesh found in `image` on how human it is: detector confidence and mirror stability.

    Animals, drawings and objects the mesh model was given still come back with a plausible human mesh; what gives
    them away is that the dedicated detector is unsure and that the mesh of the mirrored crop disagrees.

    Args:
        image: (H, W, 3) uint8 RGB.
        lm: (478, 3) landmarks in pixels of `image`.
    """
    from scipy.spatial import cKDTree

    n = LIKENESS_CROP
    crop = _aligned_crop(image, lm, 2.0, n)
    near = [b for b in _detections(crop, _near_face_detector()) if abs(b[0] + b[2] / 2 - n / 2) < 0.3 * n]
    score = max((b[4] for b in near), default=0.0)
    mesh = detect_landmarks(crop)
    mirrored = detect_landmarks(np.ascontiguousarray(crop[:, ::-1]))
    if not mesh or not mirrored:
        return FaceLikeness(score, float("inf"))
    a, b = mesh[0][:, :2], mirrored[0][:, :2].copy()
    b[:, 0] = n - 1 - b[:, 0]
    face_h = float(np.linalg.norm(a[FOREHEAD] - a[CHIN]))
    # Mirroring swaps left and right landmark ids, so compare point sets: each landmark to its nearest mirrored one.
    err = float(cKDTree(b).query(a)[0].mean()) / max(face_h, 1e-6)
    return FaceLikeness(score, err)


def face_roll(lm: np.ndarray) -> float:
    """Degrees the face's chin-to-forehead axis is turned clockwise from image-up (0 upright, 180 upside down)."""
    up = lm[FOREHEAD, :2].astype(np.float64) - lm[CHIN, :2]
    return float(np.degrees(np.arctan2(up[0], -up[1])))


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
            f"Portrait {name}: the face is too small: {face_h:.0f} px forehead to chin (minimum {MIN_FACE_PX} px). "
            "Use a closer or higher-resolution photo, or crop it around the face.",
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


def _no_face(name: str, detail: str = "") -> InputError:
    return InputError(
        f"Portrait {name}: no human face found{detail}. Use a clear, front-facing photo of one person "
        "(photos, paintings and statues of people work; animals, objects and cartoons do not).",
        f"portrait_{name.lower()}",
    )


def _find_face(image: np.ndarray, name: str) -> tuple[np.ndarray, int, FaceLikeness]:
    """The largest human face's landmarks, the number of faces and how human it looked; small faces are found by
    detector, then meshed.

    Raises:
        InputError: no human face (nothing found, or only things that fail `face_likeness`), or a face too small.
    """
    import cv2

    field = f"portrait_{name.lower()}"
    faces = detect_landmarks(image)
    boxes = [b for b in _detections(image) if b[4] >= MIN_DETECTOR_SCORE]  # faces the mesh's detector misses, too
    human = [(lm, like) for lm in faces if (like := face_likeness(image, lm)).is_human]
    if human:
        return human[0][0], max(len(human), len(boxes)), human[0][1]
    # Faces that are small in a big photo: the full-range detector, then the same on overlapping tiles (each
    # face is larger relative to a tile), so a tiny face is reported as too small rather than as no face.
    h, w = image.shape[:2]
    boxes = _detections(image)
    th, tw = int(0.6 * h), int(0.6 * w)
    for ty in (0, h - th) if not boxes else ():
        for tx in (0, w - tw):
            tile = np.ascontiguousarray(image[ty : ty + th, tx : tx + tw])
            boxes += [(x + tx, y + ty, bw, bh, s) for x, y, bw, bh, s in _detections(tile)]
    boxes.sort(key=lambda b: -b[2] * b[3])
    for x, y, bw, bh, score in boxes:
        if bh < MIN_FACE_PX:
            if score < MIN_SMALL_FACE_SCORE:
                continue  # an unsure speck: not evidence of a face
            raise InputError(
                f"Portrait {name}: the face is too small: about {bh:.0f} px tall (minimum {MIN_FACE_PX} px). "
                "Use a closer or higher-resolution photo, or crop it around the face.",
                field,
            )
        # Re-run the mesh on a square around the detection, big enough for its short-range detector.
        side = 3.0 * max(bw, bh)
        x0, y0 = x + bw / 2 - side / 2, y + bh / 2 - side / 2
        k = 384 / side
        m = np.array([[k, 0, -x0 * k], [0, k, -y0 * k]])
        patch = cv2.warpAffine(image, m, (384, 384), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        for found in detect_landmarks(patch):
            lm = found.copy()
            lm[:, :2] = lm[:, :2] / k + [x0, y0]
            lm[:, 2] /= k
            likeness = face_likeness(image, lm)
            if likeness.is_human:
                return lm, len(boxes), likeness
    raise _no_face(name)


def _find_upright_face(image: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray, int, int, FaceLikeness]:
    """Find the face in all four quarter turns of the photo and keep the turn that shows it upright.

    Every turn is tried, not only when the photo as given fails: the mesh sometimes fits an upright mesh onto a
    sideways or upside-down face (a painting in three-quarter view turned 90 degrees read as tilted 39 degrees; an
    upside-down face as upright, with a lower detector score). Of the turns with a human face within
    `UPRIGHT_MAX_ROLL_DEG` of upright, the one with the least roll plus 100 x (1 - detector score) wins.

    Returns:
        (image, landmarks, n_faces, quarter_turns, likeness): the image turned `quarter_turns` x 90 degrees
        counterclockwise (`np.rot90`), the face upright in it, its landmarks in that image's pixels, and the evidence
        that it is human.
    Raises:
        InputError: what the photo as given was refused for, when no turn gives an upright human face.
    """
    best: tuple | None = None
    first_error: InputError | None = None
    for k in range(4):
        turned = np.ascontiguousarray(np.rot90(image, k))
        try:
            lm, n_faces, likeness = _find_face(turned, name)
        except InputError as exc:
            first_error = first_error or exc
            continue
        roll = abs(face_roll(lm))
        if roll > UPRIGHT_MAX_ROLL_DEG:
            continue  # this turn shows the face lying on its side; another turn stands it up
        cost = roll + 100.0 * (1.0 - likeness.detector_score)
        if best is None or cost < best[0]:
            best = (cost, turned, lm, n_faces, k, likeness)
    if best is None:
        raise first_error or _no_face(name)
    return best[1:]


def _crop_square(lm: np.ndarray, face_h: float, w: int, h: int, margin: float) -> tuple[float, float, float]:
    """(x0, y0, side) of the square crop around head and shoulders, in photo pixels.

    `margin` x 1.45 face heights across (the mesh covers brows to chin; 1.45x adds hair, the margin shoulders),
    centred a little below the face. A photo with less room than that gets a tighter square, down to
    `TIGHT_MARGIN`, moved to stay inside the photo where it can: the less of the crop lies outside the photo, the
    less of it has to be made up.
    """
    x_min, y_min = lm[:, :2].min(axis=0)
    x_max, y_max = lm[:, :2].max(axis=0)
    cx = (x_min + x_max) / 2
    cy = (y_min + y_max) / 2 + 0.12 * face_h
    side = margin * 1.45 * face_h
    if side > min(w, h):
        tightest = max(TIGHT_MARGIN * 1.45 * face_h, 1.1 * max(x_max - x_min, y_max - y_min))
        side = max(float(min(w, h)), min(side, tightest))
    x0, y0 = cx - side / 2, cy - side / 2
    # Shift into the photo; the face stays inside the square, since the square is wider than the face.
    if side <= w:
        x0 = min(max(x0, 0.0), w - side)
    if side <= h:
        y0 = min(max(y0, 0.0), h - side)
    return float(x0), float(y0), float(side)


def _ramp(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def _padded_crop(image: np.ndarray, x0: float, y0: float, side: float, size: int) -> np.ndarray:
    """The (size, size, 3) crop of the square (x0, y0, side); where it leaves the photo, the photo's edge is
    continued by mirroring, blurred more the further out, instead of repeating the edge pixels (long streaks)."""
    import cv2

    h, w = image.shape[:2]
    pad = [max(0, int(np.ceil(v)) + 2) for v in (-y0, y0 + side - h, -x0, x0 + side - w)]  # top, bottom, left, right
    if any(pad):
        top, bottom, left, right = pad
        big = cv2.copyMakeBorder(image, top, bottom, left, right, cv2.BORDER_REFLECT_101)
        inside = np.ones(big.shape[:2], np.uint8)
        inside[top : top + h, left : left + w] = 0
        dist = cv2.distanceTransform(inside, cv2.DIST_L2, 3)
        # A few pixels of mirror image carry the photo's texture over the seam; further out the mirror image is
        # blurred heavily (computed small), so it continues the photo's colours, not its shapes (a second ear or
        # shoulder would read as real).
        k = min(1.0, 128.0 / max(big.shape[:2]))
        small = cv2.resize(big, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), PAD_BLUR * side * k)
        blurred = cv2.resize(small, (big.shape[1], big.shape[0]), interpolation=cv2.INTER_LINEAR)
        wgt = _ramp(dist / max(PAD_RAMP * side, 1.0))[..., None]
        image = np.clip(big * (1 - wgt) + blurred * wgt + 0.5, 0, 255).astype(np.uint8)
        x0, y0 = x0 + left, y0 + top
    scale = size / side
    m = np.array([[scale, 0, -x0 * scale], [0, scale, -y0 * scale]], dtype=np.float64)
    flags = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.warpAffine(image, m, (size, size), flags=flags, borderMode=cv2.BORDER_REFLECT_101)


def build_rig(
    source: str | Path | np.ndarray | PILImage,
    name: str = "A",
    config: FaceConfig | None = None,
    limits: LimitsConfig | None = None,
) -> FaceRig:
    """Read a portrait, find its largest human face (turning the photo upright if needed), crop head and shoulders
    to a square and segment the person.

    Args:
        source: a file path (uploads), a PIL image or an (H, W[, C]) array; see `load_image`.
        name: "A" or "B": which portrait, for messages and the error's `field`.
        config: crop size and margin.
        limits: file size and pixel count limits (default `LimitsConfig()`); the app passes `app_limits()`.
    Raises:
        InputError: with the portrait's name, for unreadable, empty or oversized files, no human face, a face too
            small, cut off, or in profile.
    """
    cfg = config or FaceConfig()
    image, source_scale = _load(source, name, limits)
    image, lm, n_faces, turns, _ = _find_upright_face(image, name)
    h, w = image.shape[:2]
    check_face(lm, (w, h), name)
    notes = []
    if turns:
        how = {1: "90° counterclockwise", 2: "180°", 3: "90° clockwise"}[turns]
        notes.append(f"Portrait {name}: the face was sideways or upside down; the photo was turned {how}.")
        log.info(notes[-1])
    if n_faces > 1:
        notes.append(f"Portrait {name}: {n_faces} faces found; animating the largest one.")
        log.warning(notes[-1])
    face_h = float(np.linalg.norm(lm[FOREHEAD, :2] - lm[CHIN, :2]))
    x0, y0, side = _crop_square(lm, face_h, w, h, cfg.margin)
    scale = cfg.size / side
    if scale > UPSCALE_NOTE:
        notes.append(
            f"Portrait {name}: the face is small ({face_h:.0f} px tall) and is enlarged {scale:.1f}x, so it will "
            "look soft. A larger photo gives a sharper result."
        )
    crop = _padded_crop(image, x0, y0, side, cfg.size)
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
        quarter_turns=turns,
    )
