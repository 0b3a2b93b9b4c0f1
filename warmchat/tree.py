"""Interactive Talking Tree (ITT): one node per utterance, and the cumulative emotion it implies for each person.

Cumulative emotion of person ``c`` at node ``v`` (a weighted reverse-level traversal over the active path):

    E_c(v) = normalize( sum_{l=0..D} lambda^l * sum_{u in level l} a(c, u) * w_sib(u) * p(u)  +  beta * prior_c )

- level 0 is ``v`` itself, level ``l`` is its ``l``-th ancestor on the active path plus that ancestor's
  siblings (alternative takes of the same turn); the root (topic) is not a level, it contributes the prior;
- ``a(c, u) = 1`` when ``c`` spoke ``u`` (emotional inertia), ``kappa`` otherwise (emotional contagion);
- ``w_sib(u) = 1`` on the active path, ``sibling_weight`` for an inactive take;
- ``p(u)`` is the utterance's (8,) emotion distribution, ``prior_c`` the person's chosen starting emotion;
- defaults (see `TreeConfig`): lambda = 0.6, kappa = 0.45, w_sib = 0.3, beta = 0.8, D = 6.

A turn's ``p(u)`` is its soft label: ``intensity`` on its emotion, the rest on neutral. Each cumulative emotion also
has circumplex coordinates ``(valence, arousal) = sum_e E_c[e] * VA[e]`` (see `emotions.VALENCE_AROUSAL`), for
plots and for blending expressions. A worked example with numbers is in docs/dialogue.md.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from warmchat.config import TreeConfig
from warmchat.emotions import EMOTIONS, soft_label, valence_arousal
from warmchat.schema import Speaker, Timeline, Turn


@dataclass
class Node:
    """One utterance (or the root, which holds the topic)."""

    id: int
    speaker: Speaker | None  # None for the root
    text: str
    p: list[float]  # (8,) emotion distribution over EMOTIONS
    intensity: float
    parent: int | None
    children: list[int] = field(default_factory=list)
    active_child: int | None = None  # the take the conversation continued with
    start: float | None = None  # seconds on the conversation clock, once voiced
    end: float | None = None
    audio: str | None = None  # a recorded line's file, as the script named it (`Turn.audio`)


class InteractiveTalkingTree:
    """The conversation as a tree of utterances; the active path is the conversation as rendered."""

    def __init__(
        self, topic: str, prior_a: str, prior_b: str, config: TreeConfig | None = None, prior_intensity: float = 0.8
    ):
        self.config = config or TreeConfig()
        self.topic = topic
        self.priors: dict[str, list[float]] = {
            "A": soft_label(prior_a, prior_intensity).tolist(),
            "B": soft_label(prior_b, prior_intensity).tolist(),
        }
        self.nodes: list[Node] = [
            Node(id=0, speaker=None, text=topic, p=[0.0] * len(EMOTIONS), intensity=0.0, parent=None)
        ]

    # ----- structure -------------------------------------------------------------------------------------------
    @property
    def root(self) -> Node:
        return self.nodes[0]

    def active_path(self) -> list[Node]:
        """Utterance nodes from the first turn to the current one, following each node's active child."""
        path, node = [], self.root
        while node.active_child is not None:
            node = self.nodes[node.active_child]
            path.append(node)
        return path

    def active_turns(self) -> list[Turn]:
        """The turns on the active path, as they were added (the emotion is read back from each node's soft label)."""
        turns = []
        for node in self.active_path():
            p = np.asarray(node.p)
            emotion = EMOTIONS[1 + int(np.argmax(p[1:]))] if p[1:].max() > 1e-9 else "neutral"
            turns.append(Turn(node.speaker, node.text, emotion, node.intensity, audio=node.audio))
        return turns

    def siblings(self, node_id: int) -> list[Node]:
        """Alternative takes of the same turn (excluding the node itself)."""
        parent = self.nodes[node_id].parent
        if parent is None:
            return []
        return [self.nodes[c] for c in self.nodes[parent].children if c != node_id]

    def add_turn(self, turn: Turn) -> int:
        """Append `turn` after the current last turn of the active path and make it active; returns its id."""
        path = self.active_path()
        parent = path[-1] if path else self.root
        return self._attach(parent, turn)

    def regenerate(self, node_id: int, turn: Turn) -> int:
        """Add `turn` as an alternative take (a sibling) of `node_id` and make it the active one; returns its id."""
        parent_id = self.nodes[node_id].parent
        if parent_id is None:
            raise ValueError("the root (topic) cannot be regenerated")
        return self._attach(self.nodes[parent_id], turn)

    def cut(self, n_turns: int) -> InteractiveTalkingTree:
        """A copy holding only the first `n_turns` of the active path (and takes made before them).

        Used for a partial result, so the tree covers exactly the turns in the video. Nodes are numbered in the
        order they were made, so everything from the first dropped turn on is newer and is dropped with it.
        """
        tree = InteractiveTalkingTree.from_dict(self.to_dict())
        path = tree.active_path()
        if n_turns >= len(path):
            return tree
        first_dropped = path[n_turns].id
        tree.nodes = tree.nodes[:first_dropped]
        for node in tree.nodes:
            node.children = [c for c in node.children if c < first_dropped]
            if node.active_child is not None and node.active_child >= first_dropped:
                node.active_child = None
        return tree

    def _attach(self, parent: Node, turn: Turn) -> int:
        node = Node(
            id=len(self.nodes),
            speaker=turn.speaker,
            text=turn.text,
            p=soft_label(turn.emotion, turn.intensity).tolist(),
            intensity=float(turn.intensity),
            parent=parent.id,
            audio=turn.audio,
        )
        self.nodes.append(node)
        parent.children.append(node.id)
        parent.active_child = node.id
        return node.id

    # ----- emotion ---------------------------------------------------------------------------------------------
    def cumulative_emotion(self, person: Speaker, node_id: int | None) -> np.ndarray:
        """E_person at `node_id` (None or 0 = before any turn): an (8,) probability vector."""
        cfg = self.config
        total = cfg.prior_weight * np.asarray(self.priors[person])
        node = self.nodes[node_id] if node_id else None
        level = 0
        while node is not None and node.speaker is not None and level <= cfg.depth:
            decay = cfg.level_decay**level
            for u, w_sib in [(node, 1.0)] + [(s, cfg.sibling_weight) for s in self.siblings(node.id)]:
                inertia = 1.0 if u.speaker == person else cfg.contagion
                total = total + decay * inertia * w_sib * np.asarray(u.p)
            node = self.nodes[node.parent] if node.parent is not None else None
            level += 1
        return total / total.sum()

    def emotion_curves(self, timeline: Timeline) -> dict[str, np.ndarray]:
        """Per-frame cumulative emotion of both people over `timeline`, (T, 8) each (see `frame_curves`)."""
        spans = [(seg.start, seg.end) for seg in timeline.segments]
        return self.frame_curves(timeline.n_frames, timeline.fps, spans)

    def frame_curves(self, n_frames: int, fps: int, spans: list[tuple[float, float]]) -> dict[str, np.ndarray]:
        """Per-frame cumulative emotion of both people, (T, 8) each, eased from one turn's value to the next.

        During turn i (spoken over `spans[i]`, seconds) the value moves smoothly from E(after turn i-1) to
        E(after turn i): feelings shift while the line is being said, not in a jump at its end.
        """
        values = self._turn_values(len(spans))
        curves = {}
        for person in ("A", "B"):
            curves[person] = np.empty((n_frames, len(EMOTIONS)))
            _fill_curve(curves[person], 0, fps, spans, values[person])
        return curves

    def _turn_values(self, n: int, first: int = 0) -> dict[str, list[np.ndarray]]:
        """E_person before any turn (k = 0) and after each of the first n active turns (k = 1..n), for k >= first."""
        path = self.active_path()
        return {
            person: [self.cumulative_emotion(person, path[k - 1].id if k else None) for k in range(first, n + 1)]
            for person in ("A", "B")
        }

    def valence_arousal_curves(self, timeline: Timeline) -> dict[str, np.ndarray]:
        """Per-frame (valence, arousal) of both people, (T, 2) each in [-1, 1], from `emotion_curves`."""
        return {person: valence_arousal(curve) for person, curve in self.emotion_curves(timeline).items()}

    def set_times(self, timeline: Timeline) -> None:
        """Record each active node's start/end from the conversation clock (the first turns, when the tree holds
        lines not voiced yet, e.g. a regenerated conversation being rendered again)."""
        for node, seg in zip(self.active_path()[: len(timeline.segments)], timeline.segments, strict=True):
            node.start, node.end = round(seg.start, 3), round(seg.end, 3)

    # ----- serialisation ---------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "topic": self.topic,
            "emotions": list(EMOTIONS),
            "priors": self.priors,
            "config": asdict(self.config),
            "nodes": [asdict(n) for n in self.nodes],
            "cumulative": {
                str(n.id): {c: [round(float(x), 5) for x in self.cumulative_emotion(c, n.id)] for c in ("A", "B")}
                for n in self.active_path()
            },
            # (valence, arousal) of each person's cumulative emotion after each active turn: the arc at a glance
            "valence_arousal": {
                str(n.id): {
                    c: [round(float(x), 4) for x in valence_arousal(self.cumulative_emotion(c, n.id))]
                    for c in ("A", "B")
                }
                for n in self.active_path()
            },
        }

    @classmethod
    def from_dict(cls, data: dict) -> InteractiveTalkingTree:
        tree = cls.__new__(cls)
        tree.config = TreeConfig(**data["config"])
        tree.topic = data["topic"]
        tree.priors = {k: list(v) for k, v in data["priors"].items()}
        tree.nodes = [Node(**n) for n in data["nodes"]]
        return tree

    def save(self, path: Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: Path) -> InteractiveTalkingTree:
        return cls.from_dict(json.loads(Path(path).read_text()))


class EmotionCurves:
    """`emotion_curves` of a conversation that grows turn by turn, computing only the frames each turn adds.

    Frame f depends only on the turns that start at or before it, so frames already computed keep their values
    when a turn is added (the earlier turns must not get new takes in between). The result is exactly
    `tree.emotion_curves(timeline)`, at a cost per turn that does not grow with the conversation.
    """

    def __init__(self, tree: InteractiveTalkingTree):
        self.tree = tree
        self._n = 0  # frames computed
        self._spans: list[tuple[float, float]] = []
        self._values: dict[str, list[np.ndarray]] = {"A": [], "B": []}  # E before / after each turn
        self._curves = {p: np.empty((0, len(EMOTIONS))) for p in ("A", "B")}

    def update(self, timeline: Timeline) -> dict[str, np.ndarray]:
        """(T, 8) per-frame cumulative emotion of both people over `timeline` (a later state of the same clock)."""
        n, fps = timeline.n_frames, timeline.fps
        spans = [(seg.start, seg.end) for seg in timeline.segments]
        known = len(self._spans)
        if spans[:known] != self._spans:
            raise ValueError("the conversation's earlier turns moved: start a new EmotionCurves")
        fresh = self.tree._turn_values(len(spans), first=len(self._values["A"]))
        for person in ("A", "B"):
            self._values[person] += fresh[person]
        lo = self._n
        if len(spans) > known:  # frames from the first new turn's start on may change
            lo = min(lo, max(int(np.floor(spans[known][0] * fps)) - 1, 0))
        self._spans = spans
        for person in ("A", "B"):
            buf = self._curves[person]
            if len(buf) < n:  # grow geometrically: appending a turn costs O(its frames), not O(all frames)
                grown = np.empty((max(n, 2 * len(buf)), len(EMOTIONS)))
                grown[:lo] = buf[:lo]
                self._curves[person] = buf = grown
            _fill_curve(buf[lo:n], lo, fps, spans, self._values[person])
        self._n = n
        return {p: self._curves[p][:n] for p in ("A", "B")}


def _fill_curve(
    out: np.ndarray, first: int, fps: int, spans: list[tuple[float, float]], values: list[np.ndarray]
) -> None:
    """Write frames [first, first + len(out)) of one person's eased curve into `out`, (n, 8).

    `values[k]` is E before any turn (k = 0) and after turn k; a frame takes the value of the last turn that starts
    at or before it (spans in order), eased from `values[i]` to `values[i + 1]` over the turn's span. Each frame is
    computed once: O(frames + turns).
    """
    t = np.arange(first, first + len(out)) / fps
    bounds = np.searchsorted(t, [start for start, _ in spans], side="left")  # each turn's first frame
    out[: bounds[0] if len(spans) else len(t)] = values[0]
    for i, (start, end) in enumerate(spans):
        lo, hi = bounds[i], bounds[i + 1] if i + 1 < len(spans) else len(t)
        if hi <= lo:
            continue
        x = np.clip((t[lo:hi] - start) / max(end - start, 1e-3), 0.0, 1.0)
        ease = (x * x * (3 - 2 * x))[:, None]
        out[lo:hi] = values[i] + (values[i + 1] - values[i]) * ease


def build_tree(
    topic: str, prior_a: str, prior_b: str, turns: list[Turn], config: TreeConfig | None = None
) -> InteractiveTalkingTree:
    """A tree whose active path is `turns`, in order."""
    tree = InteractiveTalkingTree(topic, prior_a, prior_b, config)
    for turn in turns:
        tree.add_turn(turn)
    return tree
