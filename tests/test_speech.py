"""Speech: two distinct voices, emotional prosody, timings the motion stage can trust, OpenAI backend, cache."""

from __future__ import annotations

import difflib
import json
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from warmchat import speech
from warmchat.config import SpeechConfig
from warmchat.errors import BackendUnavailable, InputError
from warmchat.schema import Turn, Utterance
from warmchat.speech import PAUSE, PROSODY, is_vowel, normalize_text, synthesize, voice_turns
from warmchat.speech.audio import frame_rms_db, mean_f0, voiced_rms
from warmchat.speech.cache import SynthesisCache
from warmchat.timeline import build_timeline

LINE = "We could go hiking by the lake on Saturday morning."
LINE_2 = "I really did not expect to see you here today."
VOICES = ("hibari", "piper-joe")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Each test gets its own on-disk speech cache, so tests neither share results nor touch ~/.cache."""
    monkeypatch.setenv("WARMCHAT_CACHE_DIR", str(tmp_path / "speech-cache"))


def _cfg(**kw) -> SpeechConfig:
    return SpeechConfig(**kw)


def test_two_distinct_voices():
    female, male = synthesize(LINE, "hibari"), synthesize(LINE, "piper-joe")
    for utt in (female, male):
        assert 1.5 < utt.duration < 8
        assert utt.audio.dtype == np.float32 and np.abs(utt.audio).max() <= 1
    assert mean_f0(female.audio, female.sample_rate) > mean_f0(male.audio, male.sample_rate) + 60
    # Loudness is normalised across voices: the same line is equally loud in both.
    levels = [20 * np.log10(voiced_rms(u.audio, u.sample_rate)) for u in (female, male)]
    assert abs(levels[0] - levels[1]) < 1.0


def _median_f0(utt: Utterance) -> float:
    import librosa

    f0, voiced, _ = librosa.pyin(utt.audio, fmin=55, fmax=450, sr=utt.sample_rate, frame_length=1024)
    return float(np.nanmedian(f0[voiced]))


def _timbre(utt: Utterance) -> np.ndarray:
    """(19,) mean MFCCs 1..19 over the voiced-level frames: the spectral envelope, loudness (c0) left out."""
    import librosa

    mfcc = librosa.feature.mfcc(y=utt.audio, sr=utt.sample_rate, n_mfcc=20)  # (20, F)
    level = librosa.feature.rms(y=utt.audio)[0][: mfcc.shape[1]]
    return mfcc[1:, level > level.max() * 0.1].mean(axis=1)


@pytest.mark.parametrize("pair", [("hibari", "hibari-low"), ("piper-joe", "piper-joe-deep")])
def test_two_people_of_the_same_sex_get_distinguishable_natural_voices(pair):
    cfg = _cfg(cache=False)
    a, b = (synthesize(LINE, v, config=cfg) for v in pair)
    retake = synthesize(LINE, pair[0], seed=1, config=cfg)  # the same voice, another take: the noise floor
    assert speech.VOICES[pair[0]].gender == speech.VOICES[pair[1]].gender
    # Pitch: about the preset's shift (pYIN median F0), far beyond a retake's wobble.
    semitones = 12 * np.log2(_median_f0(b) / _median_f0(a))
    assert abs(semitones - speech.VOICES[pair[1]].style.semitones) < 1.0, semitones
    assert abs(12 * np.log2(_median_f0(retake) / _median_f0(a))) < 0.7
    # Timbre: the spectral envelope moves (a longer vocal tract), far more than between two takes.
    assert np.linalg.norm(_timbre(a) - _timbre(b)) > 2 * np.linalg.norm(_timbre(a) - _timbre(retake))
    # Natural: no clipping, same loudness, a plausible length, timings to the end of the audio.
    for utt in (a, b):
        assert np.abs(utt.audio).max() < 0.99 and np.mean(np.abs(utt.audio) > 0.95) < 1e-4
        assert abs(utt.duration - a.duration) < 0.25 * a.duration
        assert utt.words[-1][0] == "morning" and abs(utt.phonemes[-1][2] - utt.duration) < 0.05


def test_each_person_has_their_own_pitch_and_rate():
    turn = Turn("B", LINE, "neutral", 0.0)
    plain = speech.voice_turn(turn, 0, "hibari", config=_cfg(cache=False))
    own = speech.voice_turn(turn, 0, "hibari", config=_cfg(cache=False, pitch_b=4.0, rate_b=1.2))
    other_person = speech.voice_turn(Turn("A", LINE, "neutral", 0.0), 0, "hibari", config=_cfg(pitch_b=4.0))
    assert abs(12 * np.log2(_median_f0(own) / _median_f0(plain)) - 4.0) < 1.0
    assert own.duration < plain.duration / 1.05  # faster (hibari rounds its phoneme durations to 25 ms units)
    assert np.array_equal(other_person.audio, plain.audio)  # A's settings are A's alone


@pytest.mark.parametrize("field,value", [("pitch_a", 9.0), ("rate_b", 2.0)])
def test_out_of_range_voice_settings_are_refused_by_name(field, value):
    with pytest.raises(InputError, match=field):
        speech.check_voices(_cfg(**{field: value}))


@pytest.mark.parametrize("voice", VOICES)
def test_same_seed_same_audio_other_seed_other_take(voice):
    cfg = _cfg(cache=False)
    a, b = synthesize(LINE, voice, seed=3, config=cfg), synthesize(LINE, voice, seed=3, config=cfg)
    c = synthesize(LINE, voice, seed=4, config=cfg)
    assert np.array_equal(a.audio, b.audio) and a.phonemes == b.phonemes
    assert not (len(a.audio) == len(c.audio) and np.array_equal(a.audio, c.audio))


@pytest.mark.parametrize("voice", VOICES)
def test_timings_cover_the_audio_and_loud_frames_fall_in_vowels(voice):
    utt = synthesize("I don't know, it is one of the best things in the world! Are you sure?", voice)
    ph = utt.phonemes
    assert len([p for p in ph if p[0] != PAUSE]) > 30
    assert ph[0][1] == 0 and ph[-1][2] == pytest.approx(utt.duration, abs=1e-3)  # cover the whole audio
    assert all(b > a for _, a, b in ph)  # every span has length
    assert all(ph[i][2] == pytest.approx(ph[i + 1][1], abs=1e-4) for i in range(len(ph) - 1))  # contiguous
    assert any(p == PAUSE for p, a, b in ph[1:-1] if b - a > 0.15)  # the sentence break is a real pause
    # Words: in order, the words of the line, each spanning phonemes.
    words = [w.lower() for w, _, _ in utt.words]
    assert words[:4] == ["i", "don't", "know", "it"] and words[-2:] == ["you", "sure"]
    assert all(utt.words[i][2] <= utt.words[i + 1][1] + 1e-4 for i in range(len(utt.words) - 1))
    # Loud 10 ms frames lie inside vowels far more often than inside pauses.
    db = frame_rms_db(utt.audio, utt.sample_rate)
    t = (np.arange(len(db)) + 0.5) * 0.01
    starts = np.array([a for _, a, _ in ph])
    labels = [ph[i][0] for i in np.clip(np.searchsorted(starts, t, side="right") - 1, 0, len(ph) - 1)]
    loud = db > db.max() - 20
    in_vowel = np.mean([is_vowel(lab) for lab, ok in zip(labels, loud, strict=True) if ok])
    in_pause = np.mean([lab == PAUSE for lab, ok in zip(labels, loud, strict=True) if ok])
    assert in_vowel > 0.45 and in_pause < 0.05
    pause_db = np.median(db[[lab == PAUSE for lab in labels]])
    vowel_db = np.median(db[[is_vowel(lab) for lab in labels]])
    assert vowel_db > pause_db + 25


def test_sad_is_slower_and_softer_than_angry():
    sad = synthesize(LINE, "piper-joe", "sad", 1.0)
    angry = synthesize(LINE, "piper-joe", "angry", 1.0)
    assert sad.duration > 1.05 * angry.duration
    assert voiced_rms(sad.audio, sad.sample_rate) < voiced_rms(angry.audio, angry.sample_rate) / 2


@pytest.mark.parametrize("voice", VOICES)
def test_each_emotion_moves_pitch_and_loudness_the_documented_way(voice):
    """Mean F0 and voiced RMS of each emotion, relative to neutral, have the sign the prosody table documents."""
    cfg = _cfg(cache=False)
    measured = {}
    for emotion in PROSODY:
        utts = [synthesize(line, voice, emotion, 1.0, config=cfg) for line in (LINE, LINE_2)]
        f0 = np.mean([12 * np.log2(mean_f0(u.audio, u.sample_rate)) for u in utts])  # semitones
        measured[emotion] = (f0, np.mean([20 * np.log10(voiced_rms(u.audio, u.sample_rate)) for u in utts]))
    f0_n, db_n = measured["neutral"]
    for emotion, p in PROSODY.items():
        if emotion == "neutral":
            continue
        d_f0, d_db = measured[emotion][0] - f0_n, measured[emotion][1] - db_n
        assert np.sign(d_f0) == np.sign(p.semitones) and abs(d_f0) > 0.3, (emotion, d_f0)
        assert np.sign(d_db) == np.sign(p.gain_db) and abs(d_db) > 0.5, (emotion, d_db)


@pytest.mark.parametrize(
    ("raw", "spoken"),
    [
        ("It costs $9.99, about 15% off!", "It costs nine dollars and ninety-nine cents, about fifteen percent off!"),
        ("On March 3rd, 2024 at 7:30 pm 🙂🎉", "On March third, twenty twenty-four at seven thirty p m"),
        ("Dr. Smith moved here in 1999.", "Doctor Smith moved here in nineteen ninety-nine."),
        ("2,500 km in 3-5 days :)", "two thousand five hundred kilometers in three to five days"),
        ("Meet me 2024-05-01 & bring £20", "Meet me May first, twenty twenty-four and bring twenty pounds"),
        ("It was -4°C, e.g. freezing.", "It was minus four degrees Celsius, for example freezing."),
    ],
)
def test_text_is_normalised_before_synthesis(raw, spoken):
    assert normalize_text(raw) == spoken


def test_numbers_are_spoken_as_words_with_timings():
    utt = synthesize("I paid $12 for 3 tickets.", "hibari")
    assert utt.text == "I paid twelve dollars for three tickets."
    assert [w.lower() for w, _, _ in utt.words] == ["i", "paid", "twelve", "dollars", "for", "three", "tickets"]


def test_a_very_long_line_is_split_at_sentences_and_fully_timed():
    sentence = "The little boat drifted slowly across the quiet harbour while the gulls called overhead. "
    utt = synthesize(sentence * 8, "hibari")
    assert len(utt.words) == 8 * 14
    pauses = [b - a for p, a, b in utt.phonemes if p == PAUSE]
    assert sum(d > 0.2 for d in pauses) >= 7  # a pause between each pair of sentences
    assert utt.phonemes[-1][2] == pytest.approx(utt.duration, abs=1e-3)


def test_empty_lines_are_errors_naming_the_turn():
    voices = {"A": "hibari", "B": "piper-joe"}
    with pytest.raises(InputError, match="turn 2"):
        voice_turns([Turn("A", "Hello.", "neutral"), Turn("B", "🙂", "happy")], voices)
    with pytest.raises(InputError, match=r"turn 3 \(A\) is empty"):
        voice_turns([Turn("A", "Hi.", "neutral"), Turn("B", "Hey.", "neutral"), Turn("A", "  ", "sad")], voices)


def test_timeline_gaps_follow_the_mood_and_end_on_whole_frames():
    turns = [Turn("A", "Hello there.", "neutral"), Turn("B", "Oh, hello.", "sad", 1.0), Turn("A", "Wow!", "happy", 1)]
    utts = voice_turns(turns, {"A": "hibari", "B": "piper-joe"})
    clock = build_timeline(turns, utts, 24000, 25)
    a, b, c = clock.segments
    sad_gap, happy_gap = b.start - a.end, c.start - b.end
    assert 0.15 <= happy_gap < sad_gap <= 0.6 + 1e-6
    assert len(clock.audio) == round(clock.n_frames * 24000 / 25)


def test_cache_reuses_speech_across_processes(tmp_path):
    cfg = _cfg(cache_dir=str(tmp_path / "c"))
    first = synthesize(LINE, "piper-joe", "happy", 0.8, seed=1, config=cfg)
    assert len(list((tmp_path / "c").rglob("*.npz"))) == 1
    speech._cache.cache_clear()  # a new process: empty memory, same directory
    again = synthesize(LINE, "piper-joe", "happy", 0.8, seed=1, config=cfg)
    assert np.array_equal(first.audio, again.audio) and first.phonemes == again.phonemes
    assert speech.get_cache(cfg).hits == 1
    synthesize(LINE, "piper-joe", "sad", 0.8, seed=1, config=cfg)  # another emotion is another entry
    assert len(list((tmp_path / "c").rglob("*.npz"))) == 2


def _utterance(seconds: float, seed: int) -> Utterance:
    audio = np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * 24000)).astype(np.float32)
    return Utterance(audio, 24000, f"line {seed}", "hibari", [("a", 0.0, seconds)], [("line", 0.0, seconds)])


def _fill(cache: SynthesisCache, keys, seconds: float = 1.0) -> None:
    for i, key in enumerate(keys):
        cache.put(key, _utterance(seconds, i))
        time.sleep(0.01)  # distinct modification times, on any filesystem clock


def test_disk_cache_stays_under_its_cap_evicting_the_least_recently_used(tmp_path):
    # ~96 kB per one-second entry: a 0.5 MB cap holds five of them.
    cache = SynthesisCache(tmp_path / "c", max_mb=0.5)
    keys = [f"{i:02d}" + "k" * 30 for i in range(5)]
    _fill(cache, keys)
    assert len(list((tmp_path / "c").rglob("*.npz"))) == 5
    entry = cache.disk_bytes() / 5
    other = SynthesisCache(tmp_path / "c", max_mb=0.5)  # another process: nothing in memory
    assert other.get(keys[0]) is not None  # read: now the most recently used on disk
    time.sleep(0.01)
    more = [f"{i:02d}" + "m" * 30 for i in range(10, 13)]
    _fill(other, more)
    on_disk = {p.stem for p in (tmp_path / "c").rglob("*.npz")}
    assert other.disk_bytes() <= 0.5e6
    assert keys[0] in on_disk and set(more) <= on_disk  # the one just read and the newest survive
    assert not {keys[1], keys[2], keys[3]} & on_disk  # the oldest unread ones went first
    assert len(on_disk) == int(0.5e6 // entry)
    assert other.get(keys[1]) is None and other.get(keys[0]) is not None


def test_disk_cache_survives_entries_deleted_by_another_process(tmp_path):
    cache = SynthesisCache(tmp_path / "c", max_mb=0.3, memory_mb=0)  # nothing kept in memory
    keys = [f"{i:02d}" + "k" * 30 for i in range(3)]
    _fill(cache, keys)
    for path in (tmp_path / "c").rglob("*.npz"):
        path.unlink()  # another process evicted everything
    assert cache.get(keys[0]) is None
    _fill(cache, [f"{i:02d}" + "n" * 30 for i in range(3, 8)])
    assert 0 < cache.disk_bytes() <= 0.3e6


def test_speech_cache_cap_comes_from_the_config(tmp_path, monkeypatch):
    monkeypatch.setenv("WARMCHAT_SPEECH_CACHE_MB", "7")
    assert SpeechConfig().cache_max_mb == 7
    cfg = _cfg(cache_dir=str(tmp_path / "c"), cache_max_mb=3)
    assert speech.get_cache(cfg).max_bytes == 3_000_000


# -- OpenAI-compatible backend, against a real HTTP server on 127.0.0.1 --------------------------------------------


class _TTSServer:
    """A minimal /v1/audio/speech server that speaks with the offline male voice and records each request."""

    def __init__(self, api_key: str = "test-key"):
        self.requests: list[dict] = []
        self.truth: dict[str, object] = {}  # text -> the offline Utterance that was served (its exact timings)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
                if self.headers.get("Authorization") != f"Bearer {api_key}":
                    self.send_response(401)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"error": {"message": "Incorrect API key", "code": "invalid_api_key"}}')
                    return
                utt = synthesize(body["input"], "piper-joe", config=SpeechConfig(cache=False))
                outer.truth[body["input"]] = utt
                pcm = (np.clip(utt.audio, -1, 1) * 32767).astype("<i2").tobytes()
                # Streamed-style header: unknown sizes, as real TTS servers send.
                fmt = struct.pack("<HHIIHH", 1, 1, utt.sample_rate, utt.sample_rate * 2, 2, 16)
                wav = b"RIFF" + b"\xff\xff\xff\xff" + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
                wav += b"data" + b"\xff\xff\xff\xff" + pcm
                self.send_response(200)
                self.send_header("Content-Type", "audio/wav")
                self.send_header("Content-Length", str(len(wav)))
                self.end_headers()
                self.wfile.write(wav)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def tts_server():
    server = _TTSServer()
    yield server
    server.stop()


def _openai_cfg(server: _TTSServer, tmp_path, key: str = "test-key") -> SpeechConfig:
    return SpeechConfig(
        backend="openai", openai_api_key=key, openai_base_url=server.url, cache_dir=str(tmp_path / "oc")
    )


def test_openai_backend_speaks_with_emotion_and_aligned_timings(tts_server, tmp_path):
    cfg = _openai_cfg(tts_server, tmp_path)
    text = "My sister bought a new bicycle, and she rides it to work every day."
    utt = synthesize(text, "onyx", "sad", 1.0, config=cfg)
    req = tts_server.requests[-1]
    assert req["path"] == "/v1/audio/speech" and req["voice"] == "onyx" and req["model"] == "gpt-4o-mini-tts"
    assert "sad" in req["instructions"].lower() and req["response_format"] == "wav"
    assert 2 < utt.duration < 8 and utt.voice == "onyx"
    # Timings aligned from the female offline voice onto the served male audio land near the true ones.
    truth = tts_server.truth[text]
    got, true = [w.lower() for w, _, _ in utt.words], [w.lower() for w, _, _ in truth.words]
    matcher = difflib.SequenceMatcher(None, got, true, autojunk=False)
    errors = [
        abs(utt.words[blk.a + k][i] - truth.words[blk.b + k][i])
        for blk in matcher.get_matching_blocks()
        for k in range(blk.size)
        for i in (1, 2)
    ]
    assert len(errors) >= 2 * 12
    assert np.median(errors) < 0.06  # seconds; measured ~0.03 (docs/speech.md)
    assert utt.phonemes[0][1] == 0 and utt.phonemes[-1][2] == pytest.approx(utt.duration, abs=1e-3)

    # Re-rendering with the server gone is served from the cache.
    tts_server.stop()
    again = synthesize(text, "onyx", "sad", 1.0, config=cfg)
    assert np.array_equal(again.audio, utt.audio)
    with pytest.raises(BackendUnavailable, match="cannot reach"):
        synthesize("Something new to say.", "onyx", config=cfg)


def test_openai_backend_explains_a_rejected_key_without_echoing_it(tts_server, tmp_path):
    cfg = _openai_cfg(tts_server, tmp_path, key="sk-wrong-secret")
    with pytest.raises(BackendUnavailable, match="rejected the API key") as info:
        synthesize("Hello there.", "coral", config=cfg)
    assert "sk-wrong-secret" not in str(info.value) and "sk-wrong-secret" not in repr(cfg)
    with pytest.raises(BackendUnavailable, match="needs an API key"):
        speech.check_voices(SpeechConfig(backend="openai", openai_api_key=""))


@pytest.mark.parametrize("fps", [25, 4])  # at 4 fps a frame's padding is longer than the shortest pause
def test_timelines_handed_out_never_change_and_match_one_concatenation(fps):
    from warmchat.schema import Utterance
    from warmchat.timeline import TimelineBuilder

    rng = np.random.default_rng(0)
    turns = [Turn("AB"[i % 2], "x", "surprised", 1.0) for i in range(6)]
    utts = [
        Utterance(rng.uniform(0.2, 1, int(rng.integers(1000, 30000))).astype(np.float32), 24000, "x", "v")
        for _ in turns
    ]
    builder, handed, copies = TimelineBuilder(24000, fps), [], []
    for i, (turn, utt) in enumerate(zip(turns, utts, strict=True)):
        builder.add(turn, utt)
        clock = builder.finish() if i == len(turns) - 1 else builder.timeline()
        handed.append(clock)
        copies.append(clock.audio.copy())
    for clock, copy in zip(handed, copies, strict=True):
        np.testing.assert_array_equal(clock.audio, copy)  # later turns did not write into earlier views
    whole = build_timeline(turns, utts, 24000, fps)
    np.testing.assert_array_equal(handed[-1].audio, whole.audio)
    assert handed[-1].segments == whole.segments
    pieces = [np.zeros(int(0.4 * 24000), np.float32)]
    for k, (seg, utt) in enumerate(zip(whole.segments, utts, strict=True)):
        if k:
            pieces.append(np.zeros(round(seg.start * 24000) - sum(map(len, pieces)), np.float32))
        pieces.append(utt.audio)
    audio = np.concatenate(pieces)
    np.testing.assert_array_equal(whole.audio[: len(audio)], audio)
    assert not whole.audio[len(audio) :].any()
