"""Extract motion tracks from a face video: head pose, rig controls, eyes, mouth and frame-aligned audio features.

    python -m warmchat.tools.extract_motion VIDEO -o TRACKS.npz

Per frame: MediaPipe's 478 landmarks (tracked in video mode); the head pose relative to the clip's most neutral
frame (a scaled 3D Procrustes fit of points that do not move with expressions); the expression controls that best
explain the remaining landmark motion under the rig built on that neutral frame (the rig's inverse: bounded least
squares on its linear blendshape basis); eye aspect ratios; the lip gap; and the audio's log-mel, loudness and pitch
(`warmchat.motion.features`). The tracks are numbers only and small (float16), so they can be shared where the
video cannot.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np

from warmchat import face as F
from warmchat.controls import CONTROLS, SIGNED, K
from warmchat.motion.features import frame_features, silent_features
from warmchat.motion.tracks import MotionTracks
from warmchat.render.fidelity import EAR_L, EAR_R, lip_gap

log = logging.getLogger(__name__)

# Points that only rigid head motion moves: forehead, nose ridge and tip, inner and outer eye corners, cheekbones.
# Brows, cheeks, lips and jaw are left out: expressions move them.
STABLE = (10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1, 2, 98, 327, 33, 263, 133, 362, 116, 345)
RIDGE = 0.02  # Tikhonov weight (pixels^2 per unit control^2, relative to the face height): splits near-twin controls
OUTLINE_WEIGHT = 0.3  # weight of the landmarks away from lips, eyes and brows in the control fit
FEATURE_POINTS = tuple(
    sorted(
        set(F.LIPS_INNER + F.UPPER_OUTER_LIP + F.LOWER_OUTER_LIP + F.EYE_R_UPPER + F.EYE_R_LOWER + F.EYE_L_UPPER)
        | set(F.EYE_L_LOWER + F.EYE_R_CORNERS + F.EYE_L_CORNERS + F.BROW_R + F.BROW_L + F.IRIS_A + F.IRIS_B)
    )
)
NO_AUDIO_DB = -60.0  # a soundtrack whose loudest frame is quieter than this is treated as absent


# ----- decoding --------------------------------------------------------------------------------------------------
def read_video(path: Path) -> tuple[np.ndarray, float]:
    """All frames (N, H, W, 3) uint8 RGB and the frame rate, decoded by imageio-ffmpeg's ffmpeg."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = reader.__next__()
    w, h = meta["size"]
    frames = [np.frombuffer(buf, np.uint8).reshape(h, w, 3) for buf in reader]
    if not frames:
        raise ValueError(f"{path}: no video frames could be decoded")
    return np.stack(frames), float(meta["fps"])


def read_audio(path: Path, sample_rate: int = 16000) -> np.ndarray:
    """(S,) float32 mono soundtrack, empty when the file has none."""
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path), "-vn", "-ac", "1", "-ar", str(sample_rate)]
    proc = subprocess.run([*cmd, "-f", "f32le", "-"], capture_output=True, check=False)
    return np.frombuffer(proc.stdout, np.float32).copy() if proc.returncode == 0 else np.zeros(0, np.float32)


def track_landmarks(frames: np.ndarray) -> list[np.ndarray | None]:
    """(478, 3) landmarks per frame (pixels, z on the x scale) from MediaPipe's face mesh in tracking mode."""
    import mediapipe as mp

    h, w = frames.shape[1:3]
    out: list[np.ndarray | None] = []
    with mp.solutions.face_mesh.FaceMesh(
        static_image_mode=True, max_num_faces=1, refine_landmarks=True, min_detection_confidence=0.5
    ) as mesh:
        for frame in frames:
            result = mesh.process(np.ascontiguousarray(frame))
            if not result.multi_face_landmarks:
                out.append(None)
                continue
            lm = result.multi_face_landmarks[0].landmark
            out.append(np.array([(p.x * w, p.y * h, p.z * w) for p in lm], dtype=np.float64))
    return out


# ----- pose and controls -----------------------------------------------------------------------------------------
def similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale s, rotation R (3, 3) and shift t with dst ~ s R src + t (least squares, Umeyama 1991)."""
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - mu_s, dst - mu_d
    u, sv, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(vt.T @ u.T))
    fix = np.diag([1.0, 1.0, d])
    rot = vt.T @ fix @ u.T
    scale = float((sv * np.diag(fix)).sum() / (a**2).sum())
    return scale, rot, mu_d - scale * rot @ mu_s


def angles(rot: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) radians of R = Rz(roll) Ry(yaw) Rx(pitch), the convention of `rig.rotation_matrix`."""
    yaw = float(np.arcsin(np.clip(-rot[2, 0], -1, 1)))
    return yaw, float(np.arctan2(rot[2, 1], rot[2, 2])), float(np.arctan2(rot[1, 0], rot[0, 0]))


def fit_pose(ref: np.ndarray, lm: np.ndarray, pivot: np.ndarray, face_h: float) -> tuple[np.ndarray, np.ndarray]:
    """Head pose of `lm` relative to `ref` (both (478, 3)), as the rig applies it, and `lm` with that pose undone.

    The rig moves a point p to s R (p - pivot) + pivot + (tx, ty) * face_h, so a similarity fit on the stable
    points gives the pose directly.
    """
    ids = np.array(STABLE)
    s, rot, t = similarity(ref[ids], lm[ids])
    shift = t - pivot + s * rot @ pivot
    yaw, pitch, roll = angles(rot)
    pose = np.array([yaw, pitch, roll, shift[0] / face_h, shift[1] / face_h, s])
    unposed = ((lm - pivot - np.r_[shift[:2], 0.0]) / s) @ rot + pivot  # R^T applied to row vectors
    return pose, unposed


class ControlFitter:
    """Least-squares inverse of the rig: landmark displacements in the neutral frame's pose -> control values."""

    def __init__(self, ref: np.ndarray, size: int):
        from warmchat.rig import build_mesh_rig

        self.mesh_rig = build_mesh_rig(ref.astype(np.float32), size)
        basis = self.mesh_rig.basis[:, : self.mesh_rig.n_landmarks].astype(np.float64)  # (K, 478, 2)
        # The tracker places lips, lids and brows precisely and the face outline loosely: weigh rows accordingly.
        weight = np.full(self.mesh_rig.n_landmarks, OUTLINE_WEIGHT)
        weight[np.array(FEATURE_POINTS)] = 1.0
        self.w = np.repeat(weight, 2)
        self.a = basis.reshape(K, -1).T * self.w[:, None]  # (956, K) pixels per unit control
        self.ridge = np.sqrt(RIDGE) * self.mesh_rig.face_height / 100 * np.eye(K)
        self.lo = np.array([-1.0 if c in SIGNED else 0.0 for c in CONTROLS])
        self.ref = ref

    def fit(self, unposed: np.ndarray) -> np.ndarray:
        """(K,) controls in their valid ranges for landmarks (478, 3) already brought back to the neutral pose."""
        from scipy.optimize import lsq_linear

        d = (unposed[:, :2] - self.ref[:, :2]).reshape(-1) * self.w
        a = np.vstack([self.a, self.ridge])
        b = np.concatenate([d, np.zeros(K)])
        return lsq_linear(a, b, bounds=(self.lo, np.ones(K)), method="bvls").x


def eye_ratios(lm: np.ndarray) -> np.ndarray:
    """(2,) eye aspect ratio of the subject's right and left eye."""
    out = []
    for p1, p2, p3, p4, p5, p6 in (EAR_R, EAR_L):
        v = np.linalg.norm(lm[p2, :2] - lm[p6, :2]) + np.linalg.norm(lm[p3, :2] - lm[p5, :2])
        out.append(v / (2 * np.linalg.norm(lm[p1, :2] - lm[p4, :2])))
    return np.array(out)


def _interpolate_missing(values: np.ndarray, found: np.ndarray) -> np.ndarray:
    """Fill the rows of an (T, ...) array where the tracker lost the face by linear interpolation in time."""
    if found.all() or not found.any():
        return values
    t = np.arange(len(values))
    flat = values.reshape(len(values), -1).copy()
    for j in range(flat.shape[1]):
        flat[~found, j] = np.interp(t[~found], t[found], flat[found, j])
    return flat.reshape(values.shape)


def choose_reference(landmarks: list[np.ndarray], gaps: np.ndarray, ears: np.ndarray) -> int:
    """Index into `landmarks` of the most neutral frame: head near its median pose, lips closed, eyes open."""
    poses = np.array([fit_pose(landmarks[0], lm, landmarks[0].mean(axis=0), 1.0)[0][:3] for lm in landmarks])
    turn = np.linalg.norm(poses - np.median(poses, axis=0), axis=1)
    ranks = [np.argsort(np.argsort(v)) for v in (turn, gaps, -ears.mean(axis=1))]
    return int(np.argmin(np.sum(ranks, axis=0)))


def extract_motion(
    frames: np.ndarray,
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    tracked: list[np.ndarray | None] | None = None,
):
    """Motion tracks of the (largest) face in a clip.

    Args:
        frames: (N, H, W, 3) uint8 RGB.
        audio: (S,) float mono soundtrack starting with the first frame, or None.
        tracked: the frames' landmarks when the caller already has them (`track_landmarks(frames)`).
    Returns:
        MotionTracks.
    Raises:
        ValueError: no face was found in any frame.
    """
    tracked = track_landmarks(frames) if tracked is None else tracked
    found = np.array([lm is not None for lm in tracked])
    if not found.any():
        raise ValueError("no face found in any frame; use a video with one clearly visible face")
    seen = [lm for lm in tracked if lm is not None]
    gaps = np.array([lip_gap(lm) for lm in seen])
    ears = np.array([eye_ratios(lm) for lm in seen])
    ref_index = int(np.flatnonzero(found)[choose_reference(seen, gaps, ears)])
    ref = tracked[ref_index]
    fitter = ControlFitter(ref, max(frames.shape[1:3]))
    pivot, face_h = fitter.mesh_rig.pivot, fitter.mesh_rig.face_height
    n = len(frames)
    pose = np.zeros((n, 6))
    controls = np.zeros((n, K))
    for i, lm in enumerate(tracked):
        if lm is not None:
            pose[i], unposed = fit_pose(ref, lm, pivot, face_h)
            controls[i] = fitter.fit(unposed)
    mouth, ear = np.zeros(n), np.zeros((n, 2))
    mouth[found], ear[found] = gaps, ears
    pose, controls, mouth, ear = (_interpolate_missing(x, found) for x in (pose, controls, mouth, ear))

    has_audio = audio is not None and len(audio) > 0 and 20 * np.log10(np.abs(audio).max() + 1e-12) > NO_AUDIO_DB
    feats = frame_features(audio, sample_rate, fps, n) if has_audio else silent_features(n)
    return MotionTracks(
        fps=fps,
        pose=pose.astype(np.float32),
        controls=controls.astype(np.float32),
        ear=ear.astype(np.float32),
        mouth_open=mouth.astype(np.float32),
        found=found,
        mel=feats.mel,
        energy_db=feats.energy_db,
        f0=feats.f0,
        has_audio=bool(has_audio),
        reference=ref_index,
        reference_angles=np.array(F.head_angles(ref.astype(np.float32)), np.float32),
    )


def extract_file(video: Path) -> MotionTracks:
    frames, fps = read_video(video)
    return extract_motion(frames, fps, read_audio(video, 16000), 16000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m warmchat.tools.extract_motion", description=__doc__.split("\n")[0]
    )
    parser.add_argument("video", type=Path, nargs="+", help="face video(s): MP4, MOV, WebM, ... (ffmpeg reads it)")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output .npz (a folder when several videos)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    many = len(args.video) > 1
    if many:
        args.out.mkdir(parents=True, exist_ok=True)
    for video in args.video:
        if not video.is_file():
            parser.error(f"{video}: no such file")
        out = args.out / f"{video.stem}.npz" if many else args.out
        tracks = extract_file(video)
        tracks.save(out)
        log.info(
            "%s: %d frames at %.0f fps, face in %d, audio %s -> %s (reference frame %d)",
            video.name, len(tracks), tracks.fps, int(tracks.found.sum()), tracks.has_audio, out, tracks.reference,
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
