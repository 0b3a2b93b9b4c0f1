"""Speech benchmark: per offline voice, real-time factor, word error rate (pocketsphinx), prosody per emotion,
and the alignment's boundary error against the engines' exact timings; with --variety, how far apart the voice
presets of one sex are (median F0, MFCC distance) and whether they stay intelligible. Prints JSON.

    python benchmarks/bench_speech.py [--quick] [--variety]
"""

from __future__ import annotations

import argparse
import difflib
import json
import platform
import re
import time

import numpy as np

from warmchat.config import SpeechConfig
from warmchat.speech import PAUSE, PROSODY, VOICES, synthesize
from warmchat.speech.align import align
from warmchat.speech.audio import Speech, mean_f0, resample, voiced_rms

# Fixed everyday sentences (numbers and symbols included on purpose: they go through the text normaliser).
SENTENCES = [
    "Could you pass me the salt, please?",
    "We could go hiking by the lake on Saturday morning.",
    "I really did not expect to see you here today.",
    "The bakery on the corner sells fresh bread every morning.",
    "My sister bought a new bicycle, and she rides it to work every day.",
    "Please remember to water the plants while I am away.",
    "The train was late again, so I missed the first half of the meeting.",
    "Do you want to watch a movie tonight or just stay in?",
    "I think it is going to rain later this afternoon.",
    "She has been learning to play the piano for three years.",
    "Let me know when you are ready to leave.",
    "The children were playing football in the park after school.",
    "It costs $12, which is cheaper than I thought.",
    "Our flight leaves at 7:30 in the morning.",
    "He forgot his keys at home and had to call a neighbour.",
    "Can you help me carry these boxes upstairs?",
    "The soup tastes much better with a little more pepper.",
    "We should call our grandmother on her birthday next week.",
    "I have never seen such a beautiful sunset before.",
    "There is a small cafe near the station that serves great coffee.",
    "Turn left at the second traffic light and keep going straight.",
    "Thank you so much for coming to my party last night.",
]


def _words(text: str) -> list[str]:
    return re.sub(r"[^a-z' ]", " ", text.lower().replace("-", " ")).split()


def wer(ref: list[str], hyp: list[str]) -> tuple[int, int]:
    """(word edits, reference words): Levenshtein distance over words."""
    d = np.arange(len(hyp) + 1)
    for i, r in enumerate(ref, 1):
        prev, d[0] = d.copy(), i
        for j, h in enumerate(hyp, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (r != h))
    return int(d[-1]), len(ref)


def recognise(decoder, audio: np.ndarray, sr: int) -> str:
    pcm = (np.clip(resample(audio, sr, 16000), -1, 1) * 32767).astype("<i2").tobytes()
    decoder.start_utt()
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return hyp.hypstr if hyp else ""


def speed_and_wer(voice: str, sentences: list[str]) -> dict:
    from pocketsphinx import Decoder

    cfg = SpeechConfig(cache=False)
    synthesize("Warm up.", voice, config=cfg)  # model loading is not synthesis time
    decoder = Decoder(samprate=16000, loglevel="FATAL")
    synth_s = audio_s = 0.0
    edits = total = 0
    for line in sentences:
        t0 = time.perf_counter()
        utt = synthesize(line, voice, config=cfg)
        synth_s += time.perf_counter() - t0
        audio_s += utt.duration
        e, n = wer(_words(utt.text), _words(recognise(decoder, utt.audio, utt.sample_rate)))
        edits, total = edits + e, total + n
    return {"rtf": round(synth_s / audio_s, 4), "wer": round(edits / total, 3), "audio_s": round(audio_s, 1)}


def prosody_effects(voice: str, sentences: list[str]) -> dict:
    """Per emotion at intensity 1: mean F0 (semitones), voiced RMS (dB) and duration, relative to neutral."""
    cfg = SpeechConfig(cache=False)
    stats = {}
    for emotion in PROSODY:
        utts = [synthesize(s, voice, emotion, 1.0, config=cfg) for s in sentences]
        stats[emotion] = (
            np.mean([12 * np.log2(mean_f0(u.audio, u.sample_rate)) for u in utts]),
            np.mean([20 * np.log10(voiced_rms(u.audio, u.sample_rate)) for u in utts]),
            np.sum([u.duration for u in utts]),
        )
    f0, db, dur = stats["neutral"]
    return {
        e: {"f0_st": round(s[0] - f0, 2), "rms_db": round(s[1] - db, 2), "duration_x": round(s[2] / dur, 3)}
        for e, s in stats.items()
        if e != "neutral"
    }


def _boundary_errors(got: list, true: list, key) -> list[float]:
    """|start_got - start_true| for items matched by label (pauses excluded), seconds."""
    a = [x for x in got if x[0] != PAUSE]
    b = [x for x in true if x[0] != PAUSE]
    m = difflib.SequenceMatcher(None, [key(x) for x in a], [key(x) for x in b], autojunk=False)
    return [abs(a[blk.a + k][1] - b[blk.b + k][1]) for blk in m.get_matching_blocks() for k in range(blk.size)]


def _ms(seconds: float) -> float:
    return round(1000 * float(seconds), 1)


def alignment_error(sentences: list[str]) -> dict:
    """Align each voice's audio using the other voice as reference; compare with the engine's exact timings.

    Also scores the naive baseline (reference timings stretched linearly to the target's length).
    """
    cfg = SpeechConfig(cache=False)
    out = {}
    for ref_voice, tgt_voice in (("hibari", "piper-joe"), ("piper-joe", "hibari")):
        errs = {"dtw_phoneme": [], "dtw_word": [], "linear_phoneme": [], "linear_word": []}
        for s in sentences:
            ref, tgt = synthesize(s, ref_voice, config=cfg), synthesize(s, tgt_voice, config=cfg)
            reference = Speech(ref.audio, ref.sample_rate, ref.phonemes, ref.words)
            got = align(tgt.audio, tgt.sample_rate, reference)
            k = tgt.duration / ref.duration
            lin_ph = [(p, a * k, b * k) for p, a, b in ref.phonemes]
            lin_w = [(w, a * k, b * k) for w, a, b in ref.words]
            errs["dtw_phoneme"] += _boundary_errors(got.phonemes, tgt.phonemes, lambda x: x[0])
            errs["dtw_word"] += _boundary_errors(got.words, tgt.words, lambda x: x[0].lower())
            errs["linear_phoneme"] += _boundary_errors(lin_ph, tgt.phonemes, lambda x: x[0])
            errs["linear_word"] += _boundary_errors(lin_w, tgt.words, lambda x: x[0].lower())
        out[f"{ref_voice}->{tgt_voice}"] = {
            name: {"median_ms": _ms(np.median(e)), "p90_ms": _ms(np.percentile(e, 90)), "n": len(e)}
            for name, e in errs.items()
        }
    return out


def timbre(audio: np.ndarray, sr: int) -> np.ndarray:
    """(19,) mean MFCCs 1..19 over frames within 20 dB of the loudest: the spectral envelope, loudness left out."""
    import librosa

    mfcc = librosa.feature.mfcc(y=audio, sr=sr, n_mfcc=20)  # (20, F)
    level = librosa.feature.rms(y=audio)[0][: mfcc.shape[1]]
    return mfcc[1:, level > level.max() * 0.1].mean(axis=1)


def voice_variety(sentences: list[str]) -> dict:
    """Per voice: WER, real-time factor, median F0, clipping; per same-sex pair: F0 gap (semitones) and MFCC
    distance, next to the distance between two takes (seeds) of one voice, the noise floor."""
    import librosa

    cfg = SpeechConfig(cache=False)
    per_voice, mfcc, takes = {}, {}, []
    for voice in VOICES:
        utts = [synthesize(s, voice, config=cfg) for s in sentences[:3]]
        audio = np.concatenate([u.audio for u in utts])
        sr = utts[0].sample_rate
        f0, voiced, _ = librosa.pyin(audio, fmin=55, fmax=450, sr=sr, frame_length=1024)
        mfcc[voice] = timbre(audio, sr)
        other = np.concatenate([synthesize(s, voice, seed=1, config=cfg).audio for s in sentences[:3]])
        takes.append(float(np.linalg.norm(mfcc[voice] - timbre(other, sr))))
        per_voice[voice] = {
            "gender": VOICES[voice].gender,
            **speed_and_wer(voice, sentences),
            "median_f0_hz": round(float(np.nanmedian(f0[voiced])), 1),
            "peak": round(float(np.abs(audio).max()), 3),
        }
    pairs = {}
    names = list(VOICES)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if VOICES[a].gender == VOICES[b].gender:
                pairs[f"{a} / {b}"] = {
                    "f0_st": round(12 * np.log2(per_voice[b]["median_f0_hz"] / per_voice[a]["median_f0_hz"]), 2),
                    "mfcc_distance": round(float(np.linalg.norm(mfcc[a] - mfcc[b])), 1),
                }
    return {"voices": per_voice, "same_sex_pairs": pairs, "mfcc_distance_between_takes_max": round(max(takes), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer sentences (a smoke run)")
    parser.add_argument("--variety", action="store_true", help="only the voice presets' variety and intelligibility")
    args = parser.parse_args()
    sentences = SENTENCES[:4] if args.quick else SENTENCES
    if args.variety:
        print(json.dumps(voice_variety(sentences), indent=1))
        return
    report = {"machine": f"{platform.processor() or platform.machine()}, {platform.system()}", "voices": {}}
    for voice in VOICES:
        report["voices"][voice] = {
            **speed_and_wer(voice, sentences),
            "prosody_vs_neutral": prosody_effects(voice, sentences[:2] if args.quick else sentences[:6]),
        }
    report["alignment"] = alignment_error(sentences)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
