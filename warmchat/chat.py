"""Chat: a visitor talks with one portrait, line by line; the avatar listens to each line, then answers it.

The conversation is the same two-person conversation as `pipeline.generate`, with the avatar as person A and the
visitor as person B: one Interactive Talking Tree, one clock, one dialogue backend. What differs:

- the visitor's lines come from them, typed or recorded. A recording is transcribed offline
  (`speech.transcribe`) and plays in the video as recorded; a typed line is spoken by a visitor voice of the other
  register than the avatar's (`visitor_voice`), because the avatar's listening reactions are timed to the phrase
  ends of speech (a silent reading pause would give them nothing to nod at). Either way the line's emotion comes
  from the offline text classifier and joins the tree.
- only the avatar's face is rendered (one square face, the current line captioned under it); the visitor hears
  themselves while the avatar listens (LEED reactions at their pauses), then sees the answer spoken.
- each `reply` renders two MPEG-TS segments (the visitor's line, then the answer) and an MP4 of the exchange;
  `save()` joins everything so far into one MP4 with its SRT, tree JSON and emotion-timeline PNG, at any point.

Frames are a pure function of the seed and the conversation up to each frame (as in the pipeline), so a regenerated
answer (`regenerate`) keeps every segment before it and renders only from the branch point on.
"""

from __future__ import annotations

import copy
import logging
import shutil
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from warmchat import compose, dialogue, face, motion, speech, text_emotion, timeline
from warmchat.config import WarmChatConfig
from warmchat.dialogue.hygiene import fit_line, too_similar
from warmchat.errors import InputError
from warmchat.inputs import check_inputs
from warmchat.pipeline import timed
from warmchat.regenerate import TAKE_SEED, plot_timeline_with_takes
from warmchat.render import make_renderer
from warmchat.schema import Turn, Utterance
from warmchat.speech.audio import PAUSE, Speech, frame_rms_db, normalize_loudness, soft_limit, trim
from warmchat.tree import InteractiveTalkingTree

log = logging.getLogger(__name__)

AVATAR, VISITOR = "A", "B"
SPOKEN = "spn"  # label of a stretch of recorded speech (no phonemes are known for a recording; only its pauses)
PAUSE_DB = 35.0  # a recording's 10 ms frames this far below its loudest are silence
Progress = Callable[[float, str], None]


@dataclass
class ChatLine:
    """A line of the chat exists: the visitor's (typed, or heard in a recording) or the avatar's answer."""

    index: int  # 0-based place in the transcript
    turn: Turn
    heard: str | None = None  # what the microphone heard (visitor lines from a recording only)


@dataclass
class ChatSegment:
    """A playable MPEG-TS piece of the chat video: the avatar listening to the visitor, or answering."""

    index: int  # the transcript line it shows
    path: Path
    start_s: float  # on the chat's clock
    end_s: float


@dataclass
class ChatTurn:
    """One exchange: the visitor's line, the avatar's answer and the video made for them."""

    number: int  # exchange number, from 1
    visitor: Turn
    answer: Turn
    heard: str | None  # the microphone's transcript (None for a typed line)
    segments: list[Path]  # (listening, answering) MPEG-TS segments
    video: Path  # MP4 of this exchange: the visitor's line with the avatar listening, then the answer
    start_s: float  # where the exchange sits on the chat's clock
    end_s: float
    seconds: float  # from the call to the answer's segment being ready
    # Where those seconds went; rendering the listening segment overlaps writing the answer, so they add up to more.
    stage_seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class ChatFiles:
    """The whole chat so far, as files."""

    video: Path  # MP4, H.264 + AAC
    srt: Path
    tree_json: Path
    timeline_png: Path
    duration_s: float


@dataclass
class _Exchange:
    visitor_index: int  # transcript index of the visitor's line (the answer is the next one)
    listen_end: int  # frame where the listening segment ends and the answer's begins
    heard: str | None
    segments: list[Path] = field(default_factory=list)
    segments_start: int = 0  # first frame of its listening segment
    video: Path | None = None


def pick_visitor_voice(speech_cfg, avatar_voice: str) -> str:
    """A voice for the visitor's typed lines: the other register than the avatar's, so the two never blur.

    Offline: the first bundled voice of the other gender (hibari <-> piper-joe), else any other voice. The openai
    backend: likewise among its known voices.
    """
    if speech_cfg.backend == "openai":
        from warmchat.speech.openai_tts import OPENAI_VOICES as known
    else:
        known = {name: info.gender for name, info in speech.VOICES.items()}
    gender = known.get(avatar_voice)
    others = [v for v in known if v != avatar_voice]
    different = [v for v in others if known[v] != gender]
    return (different or others or [avatar_voice])[0]


def recorded_utterance(audio: np.ndarray, sample_rate: int, text: str, words, target_dbfs: float) -> Utterance:
    """The visitor's recording as an utterance: trimmed, levelled like the voices, its pauses found.

    A recording has no phoneme timings; its "phonemes" are alternating stretches of speech (`SPOKEN`) and silence
    (`PAUSE`), from the level of each 10 ms frame, which is what the listener's reactions are timed to (they come at
    the speaker's pauses). Only the avatar's face is rendered, so no mouth is ever made from them.
    """
    db = frame_rms_db(audio, sample_rate)
    voiced = db > db.max() - PAUSE_DB
    spans, start = [], 0
    for i in range(1, len(voiced) + 1):
        if i == len(voiced) or voiced[i] != voiced[start]:
            label = SPOKEN if voiced[start] else PAUSE
            spans.append((label, start * 0.01, min(i * 0.01, len(audio) / sample_rate)))
            start = i
    phonemes = _merge_blips(spans)
    spoken = trim(Speech(audio.astype(np.float32), sample_rate, phonemes, list(words)))
    level = soft_limit(normalize_loudness(spoken.audio, sample_rate, target_dbfs))
    return Utterance(level, sample_rate, text, "recording", spoken.phonemes, spoken.words)


def _merge_blips(spans: list[tuple[str, float, float]], min_s: float = 0.06) -> list[tuple[str, float, float]]:
    """Fold stretches shorter than `min_s` (a click, a stop consonant's gap) into the one before."""
    out: list[tuple[str, float, float]] = []
    for label, a, b in spans:
        if out and (b - a < min_s or out[-1][0] == label):
            out[-1] = (out[-1][0], out[-1][1], b)
        else:
            out.append((label, a, b))
    return out


class Chat:
    """A conversation between a visitor and one portrait.

    Example::

        chat = warmchat.Chat("examples/mona_lisa.jpg", name="Lisa", emotion="happy")
        turn = chat.reply("Hello! How are you today?")      # or chat.reply(audio="hello.wav")
        print(turn.answer.text, turn.video)
        files = chat.save("out/chat.mp4")                   # MP4, SRT, tree JSON, timeline PNG
    """

    def __init__(
        self,
        portrait: str | Path | np.ndarray,
        *,
        name: str = "Alex",
        emotion: str = "neutral",
        voice: str = "",
        visitor_name: str = "Visitor",
        visitor_voice: str = "auto",
        topic: str = "",
        config: WarmChatConfig | None = None,
        workdir: str | Path | None = None,
    ):
        """
        Args:
            portrait: the avatar's photo (path or RGB array).
            name, emotion: the avatar's name and starting emotion.
            voice: the avatar's voice ("" = the config's voice for person A).
            visitor_name: how the avatar knows the visitor (prompts, captions, transcript).
            visitor_voice: the voice of the visitor's typed lines; "auto" = the other register than the avatar's.
            topic: what the chat is about; "" = the visitor's first line.
            config: settings (seed, face size, dialogue backend, voices, limits); not changed by the chat.
            workdir: where segments and files go (default: a new temporary folder).
        Raises:
            InputError: a bad portrait, emotion, voice, name or setting, before any work.
        """
        cfg = copy.deepcopy(config) if config is not None else WarmChatConfig()
        if cfg.dialogue.backend == "script":
            raise InputError("a chat needs a dialogue model to answer: use the local or the openai backend", "llm")
        key = "openai_voice" if cfg.speech.backend == "openai" else "voice"
        if voice:
            setattr(cfg.speech, f"{key}_a", voice)
        avatar_voice = getattr(cfg.speech, f"{key}_a")
        if visitor_voice == "auto":
            visitor_voice = pick_visitor_voice(cfg.speech, avatar_voice)
        setattr(cfg.speech, f"{key}_b", visitor_voice)
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="warmchat-chat-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        # Checked as a conversation whose second person is the visitor (no portrait of theirs is ever read).
        req = check_inputs(
            portrait, portrait, emotion_a=emotion, emotion_b="neutral", topic=topic or "a chat", turns=None,
            script=None, out=self.workdir / "chat.mp4", names={AVATAR: name, VISITOR: visitor_name}, config=cfg,
        )  # fmt: skip
        self.config, self.names, self.emotion = cfg, req.names, req.emotion_a
        self.topic = req.topic if topic.strip() else ""
        self.voices = speech.voices_for(cfg.speech)
        self.rig = face.build_rig(req.portrait_a, AVATAR, cfg.face, limits=cfg.limits)
        self.notes = list(self.rig.notes)
        self.renderer = make_renderer(self.rig, cfg.render.renderer, cfg.render, cfg.seed)
        self.backend = dialogue.make_backend(cfg.dialogue, limits=cfg.limits)
        # Load the classifier and the voices now rather than in the middle of the first reply.
        text_emotion.label_emotion("Hello.", cfg.dialogue.emotion_classifier)
        if cfg.speech.backend == "offline":
            for v in sorted(set(self.voices.values())):
                speech.synthesize("Hello.", v, config=replace(cfg.speech, cache=False))
        from warmchat.controls import K
        from warmchat.motion.crhmg import load_crhmg
        from warmchat.motion.features import frame_features

        load_crhmg()  # the head-motion model, the speech analysis (mel, YIN), the renderer's kernels (one rest frame)
        frame_features(np.zeros(cfg.speech.sample_rate, np.float32), cfg.speech.sample_rate, cfg.compose.fps, 25)
        self.renderer.render_batch(np.zeros((1, K), np.float32), np.array([[0, 0, 0, 0, 0, 1]], np.float32))
        self.tree = InteractiveTalkingTree(self.topic, self.emotion, "neutral", cfg.tree)
        self.turns: list[Turn] = []  # the transcript: visitor, avatar, visitor, avatar, ...
        self.utterances: list[Utterance] = []
        self._exchanges: list[_Exchange] = []
        self._captions: dict[int | None, np.ndarray] = {}
        self._parts = self.workdir / "parts"
        self._parts.mkdir(exist_ok=True)
        self._times: dict[str, float] = {}
        self._renders = 0  # numbers segment files, so a regenerated one never overwrites a kept one
        self._restart_clock(0)

    # ----- the conversation ------------------------------------------------------------------------------------
    @property
    def duration_s(self) -> float:
        return self._done / self.config.compose.fps

    def reply(
        self,
        text: str | None = None,
        audio: str | Path | np.ndarray | tuple[int, np.ndarray] | None = None,
        *,
        sample_rate: int | None = None,
        progress: Progress | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> ChatTurn:
        """The visitor says `text` (typed) or `audio` (a recording); the avatar listens, then answers.

        Args:
            text: the visitor's typed line.
            audio: a recording: a file (WAV, WebM, Ogg, MP3...), a (rate, samples) pair, or samples at `sample_rate`.
            progress: called with (fraction 0..1, message).
            on_text: called with the answer's text so far while it is written, when the backend streams.
        Returns:
            ChatTurn: both lines, the exchange's segments and MP4, and the seconds until the answer was ready.
        Raises:
            InputError: no line or both, an empty or too long line, a recording without words, the chat's limit.
        """
        for event in self.iter_reply(text, audio, sample_rate=sample_rate, progress=progress, on_text=on_text):
            if isinstance(event, ChatTurn):
                return event
        raise RuntimeError("the reply ended without an answer")  # unreachable: iter_reply ends with a ChatTurn

    def iter_reply(
        self,
        text: str | None = None,
        audio: str | Path | np.ndarray | tuple[int, np.ndarray] | None = None,
        *,
        sample_rate: int | None = None,
        progress: Progress | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> Iterator[ChatLine | ChatSegment | ChatTurn]:
        """Like `reply`, step by step: yields the visitor's line, its segment, the answer, its segment, then the
        ChatTurn. Nothing changes in the chat until the visitor's line is accepted."""
        t0 = time.perf_counter()
        self._times = {}
        progress = progress or (lambda f, m: log.info("%3.0f%% %s", f * 100, m))
        cfg = self.config
        if (text is None or not str(text).strip()) == (audio is None):
            raise InputError("say one thing: type a line or record one (not both, not neither)", "text")
        heard = None
        if audio is not None:
            from warmchat.speech.transcribe import read_audio, transcribe

            progress(0.02, "listening to your recording")
            sr = cfg.speech.sample_rate
            with timed(self._times, "hear"):
                samples = read_audio(audio, sr) if sample_rate is None else read_audio((sample_rate, audio), sr)
                heard_words = transcribe(samples, sr)
            heard = text = heard_words.text.strip()
            if not heard:
                raise InputError(
                    "no words were heard in the recording; speak closer to the microphone or type", "audio"
                )
        text = self._check_line(str(text))
        with timed(self._times, "classify"):
            emotion, intensity = text_emotion.label_emotion(text, cfg.dialogue.emotion_classifier)
        visitor = Turn(VISITOR, text, emotion, intensity, emotion_given=False)
        index = len(self.turns)
        progress(0.1, "voicing your line" if heard is None else "placing your recording")
        with timed(self._times, "voice"):
            if heard is None:
                utt = speech.voice_turn(visitor, index, self.voices[VISITOR], seed=cfg.seed, config=cfg.speech)
            else:
                utt = recorded_utterance(samples, sr, text, heard_words.words, cfg.speech.target_dbfs)
        self._check_length(utt)

        # Accepted: from here the chat grows; a failure or a cancellation part-way leaves it as it was.
        snapshot, answered = self._snapshot(), False
        try:
            if not self.topic:  # the visitor's first line sets what the chat is about
                self.topic = dialogue.check_topic(text[: dialogue.MAX_TOPIC_CHARS])
                self.tree.topic = self.tree.root.text = self.topic
            exchange = _Exchange(visitor_index=index, listen_end=0, heard=heard)
            self._exchanges.append(exchange)
            self._add(visitor, utt)
            yield ChatLine(index, visitor, heard)
            end = timeline.segment_end_frame(self.clock, self.builder.segments[-1], last=False)
            progress(0.2, f"{self.names[AVATAR]} listens")
            # The avatar listening is rendered while the answer is written: the model samples on one core, the
            # renderer takes the other. The pool waits for the render on every way out, a failure included.
            with ThreadPoolExecutor(1, thread_name_prefix="chat-listen") as pool:
                listening = pool.submit(self._render, index, end, exchange)
                for event in self._answer(exchange, t0, progress, on_text, replaces=None, listening=listening):
                    answered = isinstance(event, ChatTurn)
                    yield event
        except BaseException:
            if not answered:  # closing this generator after the answer (as `reply` does) keeps it
                self._restore(snapshot)
            raise

    def regenerate(
        self, turn: int, *, progress: Progress | None = None, on_text: Callable[[str], None] | None = None
    ) -> ChatTurn:
        """A new take of the avatar's answer at transcript line `turn` (1-based); later lines are dropped.

        The later lines answered the discarded take, so they are dropped from the chat (the tree keeps them, under
        the discarded take, beside the new one). Everything before the answer is kept as rendered.

        Raises:
            InputError: `turn` is not one of the avatar's answers.
        """
        answers = [i + 1 for i, t in enumerate(self.turns) if t.speaker == AVATAR]
        if turn not in answers:
            mine = f"line {turn} is {self.names[VISITOR]}'s own" if 1 <= turn <= len(self.turns) else "no such line"
            raise InputError(
                f"{mine}: pick one of {self.names[AVATAR]}'s answers to regenerate: "
                f"{', '.join(map(str, answers)) or 'none yet'}",
                "turn",
            )
        t0 = time.perf_counter()
        self._times = {}
        k = turn - 1
        number = next(n for n, ex in enumerate(self._exchanges) if ex.visitor_index == k - 1)
        old = self.tree.active_path()[k]
        snapshot = self._snapshot()
        try:
            # Back to the moment the visitor's line ended: the same clock, and motion state rebuilt for it.
            self._exchanges = self._exchanges[: number + 1]
            exchange = self._exchanges[number]
            exchange.segments, exchange.video = exchange.segments[:1], None
            self.turns, self.utterances = self.turns[:k], self.utterances[:k]
            self._restart_clock(exchange.listen_end)
            for event in self._answer(exchange, t0, progress or (lambda f, m: None), on_text, replaces=old):
                if isinstance(event, ChatTurn):
                    return event
        except BaseException:
            self._restore(snapshot)
            raise
        raise RuntimeError("the regenerated answer was not rendered")  # unreachable

    def save(self, out: str | Path | None = None) -> ChatFiles:
        """The whole chat so far: MP4, SRT, tree JSON (discarded takes included) and emotion-timeline PNG.

        Args:
            out: the .mp4 to write (default `chat.mp4` in the work folder); the others are written beside it.
        """
        from warmchat.pipeline import output_paths

        if not self._exchanges:
            raise InputError("nothing to save yet: say something first", "text")
        paths = output_paths(Path(out) if out else self.workdir / "chat.mp4")
        paths["video"].parent.mkdir(parents=True, exist_ok=True)
        clock = self.clock
        segments = [p for ex in self._exchanges for p in ex.segments]
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "audio.wav"
            compose.write_wav(wav, clock.audio, clock.sample_rate)
            compose.join_segments(segments, wav, paths["video"], clock.fps)
        compose.write_srt(paths["srt"], clock, self.turns, self.names)
        self.tree.save(paths["tree_json"])
        plot_timeline_with_takes(paths["timeline_png"], self.tree, clock, self.turns, self.names)
        return ChatFiles(paths["video"], paths["srt"], paths["tree_json"], paths["timeline_png"], clock.duration)

    def close(self) -> None:
        """Delete the work folder (files returned by `save` into another folder stay)."""
        if hasattr(self.backend, "close"):
            self.backend.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # ----- steps -----------------------------------------------------------------------------------------------
    def _answer(self, exchange: _Exchange, t0: float, progress: Progress, on_text, replaces, listening=None):
        """Write, voice and render the avatar's answer to the last line.

        Args:
            replaces: the take this answer replaces (regenerate), or None.
            listening: a Future of the listening segment being rendered meanwhile, or None.
        """
        cfg = self.config
        progress(0.3, f"{self.names[AVATAR]} is thinking")
        takes = [] if replaces is None else [replaces, *self.tree.siblings(replaces.id)]
        seed = cfg.seed + len(takes) * TAKE_SEED
        with timed(self._times, "dialogue"):
            answer = self._write_answer(on_text, seed, [n.text for n in takes])
        if listening is not None:
            yield listening.result()
            exchange.listen_end = self._done
        index = len(self.turns)
        with timed(self._times, "voice"):
            utt = speech.voice_turn(answer, index, self.voices[AVATAR], seed=seed, config=cfg.speech)
        if replaces is None:
            self._add(answer, utt)
        else:  # a sibling of the discarded take, now the active one
            self.tree.regenerate(replaces.id, answer)
            self._add(answer, utt, in_tree=False)
        yield ChatLine(index, answer)
        progress(0.6, f"{self.names[AVATAR]} answers")
        self.clock = self.builder.finish()  # a short silence after the answer: its last reaction is seen
        yield self._render(index, self.clock.n_frames, exchange)
        seconds = time.perf_counter() - t0
        with timed(self._times, "join"):
            exchange.video = self._exchange_video(exchange)
        progress(1.0, "done")
        fps = self.clock.fps
        yield ChatTurn(
            number=len(self._exchanges), visitor=self.turns[exchange.visitor_index], answer=answer,
            heard=exchange.heard, segments=list(exchange.segments), video=exchange.video,
            start_s=exchange.segments_start / fps, end_s=self._done / fps, seconds=seconds,
            stage_seconds={k: round(v, 3) for k, v in self._times.items()},
        )  # fmt: skip

    def _write_answer(self, on_text, seed: int, discarded: list[str]) -> Turn:
        """The avatar's answer to the transcript so far; a new take says something other than `discarded`."""
        cfg = self.config
        last = self.tree.active_path()[len(self.turns) - 1].id  # the visitor's line being answered
        request = dialogue.TurnRequest(
            topic=self.topic, names=self.names, speaker=AVATAR, history=list(self.turns),
            feelings={c: self.tree.cumulative_emotion(c, last) for c in (AVATAR, VISITOR)},
            index=len(self.turns), total=len(self.turns) + 2, seed=seed, on_text=on_text,
        )  # fmt: skip
        for attempt in range(2):  # a new take should say something new
            turn = self.backend.next_turn(replace(request, seed=request.seed + attempt * 101))
            turn.text = fit_line(turn.text, cfg.limits.line_words, cfg.limits.line_chars)
            if not any(too_similar(turn.text, old) for old in discarded):
                break
        return Turn(AVATAR, turn.text, turn.emotion, turn.intensity, turn.emotion_given)

    def _snapshot(self) -> dict:
        exchanges = [replace(ex, segments=list(ex.segments)) for ex in self._exchanges]
        tree = InteractiveTalkingTree.from_dict(self.tree.to_dict())
        return {"turns": list(self.turns), "utterances": list(self.utterances), "exchanges": exchanges,
                "tree": tree, "topic": self.topic, "done": self._done}  # fmt: skip

    def _restore(self, snapshot: dict) -> None:
        self.turns, self.utterances = snapshot["turns"], snapshot["utterances"]
        self._exchanges, self.tree, self.topic = snapshot["exchanges"], snapshot["tree"], snapshot["topic"]
        self._restart_clock(snapshot["done"])

    def _check_line(self, text: str) -> str:
        limits = self.config.limits
        text = " ".join(text.split())
        if len(text.split()) > limits.line_words:
            raise InputError(f"your line has {len(text.split())} words; the limit is {limits.line_words}", "text")
        if len(text) > limits.line_chars:
            raise InputError(f"your line has {len(text)} characters; the limit is {limits.line_chars}", "text")
        return text

    def _check_length(self, utt: Utterance) -> None:
        limit = self.config.limits.speech_s
        if self.clock.duration + utt.duration + 10.0 > limit:  # room for the line and a short answer
            raise InputError(
                f"this chat has reached its length limit ({limit:g} s of video); save it and start a new one", "text"
            )

    def _add(self, turn: Turn, utt: Utterance, in_tree: bool = True) -> None:
        self.turns.append(turn)
        self.utterances.append(utt)
        self.builder.add(turn, utt)
        self.clock = self.builder.timeline()
        if in_tree:
            self.tree.add_turn(turn)

    def _restart_clock(self, done: int) -> None:
        """The clock and motion state for the kept lines, as they were when frame `done` was reached."""
        cfg = self.config
        self.builder = timeline.TimelineBuilder(cfg.speech.sample_rate, cfg.compose.fps)
        for turn, utt in zip(self.turns, self.utterances, strict=True):
            self.builder.add(turn, utt)
            if turn.speaker == AVATAR:
                self.builder.finish()  # as `_answer` did after each answer
        self.clock = self.builder.timeline()
        # Fresh motion state (its caches hold lines that may be gone); frames depend only on the seed and the
        # conversation up to them, so the kept frames are what this state would make too.
        rng = np.random.default_rng(cfg.seed).spawn(2)[0]
        self.params = motion.draw_person_motion(rng, cfg.motion)
        self._done = done
        self._captions.clear()

    def _render(self, index: int, end: int, exchange: _Exchange) -> ChatSegment:
        """Frames [done, end) of the avatar, with the matching audio, into an MPEG-TS segment."""
        cfg, clock = self.config, self.clock
        if not exchange.segments:
            exchange.segments_start = self._done
        with timed(self._times, "motion"):
            self.tree.set_times(clock)
            curves = self.tree.emotion_curves(clock)
            track = motion.build_motion(AVATAR, clock, self.utterances, curves[AVATAR], cfg.motion, self.params,
                                        self._done, end)  # fmt: skip
        self._renders += 1
        path = self._parts / f"part_{self._renders:04d}.ts"
        start = self._done
        spf = clock.sample_rate / clock.fps
        size = cfg.face.size
        with timed(self._times, "render"), tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "segment.wav"
            compose.write_wav(wav, clock.audio[round(start * spf) : round(end * spf)], clock.sample_rate)
            with compose.VideoWriter(path, size, size + compose.CAPTION_H, clock.fps, wav, cfg.compose.crf) as out:
                step = max(1, cfg.render.batch_frames)
                for k0 in range(0, end - start, step):
                    rows = slice(k0, min(k0 + step, end - start))
                    faces = self.renderer.render_batch(track.expression[rows], track.pose[rows])
                    for i, k in enumerate(range(rows.start, rows.stop)):
                        seg = clock.segment_at((start + k) / clock.fps)
                        caption = self._caption(seg.turn_index if seg else None)
                        out.write(np.concatenate([faces[i], caption], axis=0))
        exchange.segments.append(path)
        self._done = end
        return ChatSegment(index, path, start / clock.fps, end / clock.fps)

    def _caption(self, index: int | None) -> np.ndarray:
        """(CAPTION_H, size, 3) strip: who speaks, how they feel, and their line."""
        if index not in self._captions:
            from PIL import Image, ImageDraw

            from warmchat.compose import _font

            size = self.config.face.size
            img = Image.new("RGB", (size, compose.CAPTION_H), (18, 18, 22))
            if index is not None:
                turn = self.turns[index]
                draw = ImageDraw.Draw(img)
                colour = (250, 200, 90) if turn.speaker == AVATAR else (120, 200, 250)
                small = max(12, size // 24)
                draw.text((10, 6), f"{self.names[turn.speaker]} ({turn.emotion})", font=_font(small), fill=colour)
                chars = max(16, int(size / (0.55 * small)))
                for j, line in enumerate(textwrap.wrap(turn.text, width=chars)[:3]):
                    draw.text((10, 12 + small + (small + 6) * j), line, font=_font(small), fill=(240, 240, 240))
            self._captions[index] = np.asarray(img)
        return self._captions[index]

    def _exchange_video(self, exchange: _Exchange) -> Path:
        """An MP4 of one exchange, from its segments and its stretch of the chat's audio."""
        clock = self.clock
        spf = clock.sample_rate / clock.fps
        out = self.workdir / f"exchange_{len(self._exchanges):03d}_{self._renders:04d}.mp4"
        with tempfile.TemporaryDirectory() as tmp:
            wav = Path(tmp) / "audio.wav"
            audio = clock.audio[round(exchange.segments_start * spf) : round(self._done * spf)]
            compose.write_wav(wav, audio, clock.sample_rate)
            compose.join_segments(exchange.segments, wav, out, clock.fps)
        return out
