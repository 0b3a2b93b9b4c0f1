"""Where WarmChat's own checkpoints are: one folder, found the same way from a checkout or an installed wheel."""

from __future__ import annotations

from pathlib import Path

from warmchat.errors import WarmChatError

PACKAGE_DIR = Path(__file__).resolve().parent
IN_CHECKOUT = (PACKAGE_DIR.parent / "pyproject.toml").is_file()  # run from the repository (or installed editable)
# The repository keeps them in checkpoints/ at its root; `pip install .` copies that folder into the package as
# warmchat/checkpoints (pyproject.toml maps the package `warmchat.checkpoints` onto it).
CHECKPOINTS = PACKAGE_DIR.parent / "checkpoints" if IN_CHECKOUT else PACKAGE_DIR / "checkpoints"

# Every checkpoint the library loads, and the command that makes it again.
MAKERS = {
    "crhmg.pt": "python -m warmchat.tools.train_crhmg",
    "lipsync.pt": "python -m warmchat.tools.train_lipsync --model mel",
    "lipsync_phonetic.npz": "python -m warmchat.tools.train_lipsync",
    "lipsync_basis.npz": "python -m warmchat.tools.train_lipsync --basis --encode ../shared/data/talking_clips",
    "leed.json": "python -m warmchat.tools.build_leed",
    "text_emotion_head.npz": "python scripts/train_text_emotion.py",
    "motion_tracks": f"python -m warmchat.tools.extract_motion VIDEO... -o {CHECKPOINTS / 'motion_tracks'}",
}
REQUIRED = ("crhmg.pt", "lipsync.pt", "leed.json")  # the motion stage cannot run without these
OPTIONAL = {  # what is lost without each of the others
    "text_emotion_head.npz": "lines are labelled with cue words only",
    "lipsync_phonetic.npz": "audio without timings moves the lips by the log-mel model (less like real lips)",
    "lipsync_basis.npz": "audio without timings moves the lips by the log-mel model (less like real lips)",
    "motion_tracks": "the training tools and benchmarks cannot run",
}


class MissingCheckpoint(WarmChatError, FileNotFoundError):
    """A checkpoint WarmChat ships is not where it should be; the message says how to get it back."""


def checkpoint(name: str) -> Path:
    """The path of one of WarmChat's checkpoints (a file, or the `motion_tracks` folder).

    Args:
        name: a key of `MAKERS`, e.g. "crhmg.pt".
    Returns:
        `CHECKPOINTS / name`, which exists.
    Raises:
        MissingCheckpoint: it is not there; the message names it and how to fix that.
    """
    path = CHECKPOINTS / name
    if not path.exists():
        raise MissingCheckpoint(f"WarmChat checkpoint {name!r} is missing: expected {path}. {how_to_fix(name)}")
    return path


def how_to_fix(name: str) -> str:
    """How to get checkpoint `name` back: restore it (checkout) or reinstall (wheel), or make it again."""
    where = (
        "restore it with `git checkout -- checkpoints`"
        if IN_CHECKOUT
        else "reinstall WarmChat with `pip install .` from a complete checkout (the wheel copies its checkpoints/)"
    )
    make = f", or make it again with `{MAKERS[name]}`" if name in MAKERS else ""
    return f"To fix it, {where}{make}."
