"""要点筆記 made offline: an extractive summary of a transcript, our own code.

Japanese has no spaces between words and we carry no tokenizer (nor its dictionary), so
sentences are compared by their character bigrams, which works for Japanese and English
alike.  The method:

1. split the transcript into sentences (。！？, English sentence ends, segment bounds);
2. weight each sentence's bigrams by TF-IDF and score the sentence by its similarity to
   the whole transcript (centrality: a sentence that shares much with the rest says
   what the meeting was about), with a bonus for decision words (決定, 承認, 期限, …);
3. give each sentence to the agenda item (議題) whose title it resembles most; a
   sentence that resembles none stays with the item of the sentence before it, since a
   meeting takes its items in turn;
4. keep the best few sentences of each item, shown in time order.

Sentences with decision words are also offered as 決定事項 candidates.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# Words that mark a decision, an approval or a plan; each adds DECISION_BONUS.
DECISION_WORDS = (
    "決定",
    "決まり",
    "決まっ",
    "決め",
    "承認",
    "了承",
    "合意",
    "とする",
    "こととし",
    "ことにし",
    "予定",
    "期限",
    "までに",
)
DECISION_BONUS = 0.3
# A sentence this similar to an agenda title (cosine of TF-IDF bigrams) moves to that
# item; below it, one shared particle pair such as 「の見」 would jump between items.
MIN_TOPIC_SIMILARITY = 0.08
# Sentences shorter than this (after normalising) say too little to be a point.
MIN_SENTENCE_CHARS = 4
MAX_POINTS_PER_TOPIC = 5
MAX_DECISIONS = 10

# After 。！？ (and their ASCII forms) always; after "." only before a space, so that
# 3.5 and e.g. stay whole.
_SENTENCE_END = re.compile(r"(?<=[。！？!?])\s*|(?<=\.)\s+")
# Dropped before bigrams: spaces and punctuation carry no topic.
_NOISE = re.compile(r"[\s、。，．,.!?！？「」『』（）()・:：;；\"'“”‘’\-〜～…]+")


@dataclass(frozen=True)
class Sentence:
    text: str
    order: int  # position in the transcript (time order)
    start_ms: int = 0
    speaker: str = ""


@dataclass
class Topic:
    """One 議題 of the summary and its points (in time order)."""

    title: str
    points: list[str] = field(default_factory=list)


@dataclass
class Summary:
    topics: list[Topic]
    decisions: list[str]

    def text(self) -> str:
        """The summary as ``Minutes.summary`` keeps it: 「■議題」 lines start a topic."""
        lines: list[str] = []
        for topic in self.topics:
            if not topic.points:
                continue
            if lines:
                lines.append("")
            lines.append(f"■{topic.title}")
            lines.extend(f"・{point}" for point in topic.points)
        return "\n".join(lines)


def split_sentences(texts: Iterable[tuple[str, int, str]]) -> list[Sentence]:
    """Sentences of ``(text, start_ms, speaker)`` segments, in the order given.  A segment
    boundary always ends a sentence (an engine's segment is a stretch of one voice)."""
    sentences: list[Sentence] = []
    for text, start_ms, speaker in texts:
        for part in _SENTENCE_END.split(text):
            part = part.strip()
            if len(_normalise(part)) >= MIN_SENTENCE_CHARS:
                sentences.append(Sentence(part, len(sentences), start_ms, speaker))
    return sentences


def _normalise(text: str) -> str:
    # NFKC folds full-width letters and digits to their ASCII forms (ＡＢＣ１ → ABC1).
    return _NOISE.sub("", unicodedata.normalize("NFKC", text).lower())


def bigrams(text: str) -> Counter[str]:
    """Character bigrams of ``text`` without spaces and punctuation (a single character
    counts as itself, so that a one-kanji title still matches)."""
    norm = _normalise(text)
    if len(norm) == 1:
        return Counter([norm])
    return Counter(norm[i : i + 2] for i in range(len(norm) - 1))


def has_decision_word(text: str) -> bool:
    return any(word in text for word in DECISION_WORDS)


class _Space:
    """TF-IDF over the sentences of one transcript."""

    def __init__(self, sentences: Sequence[Sentence]) -> None:
        self.counts = [bigrams(s.text) for s in sentences]
        df: Counter[str] = Counter()
        for counts in self.counts:
            df.update(counts.keys())
        total = len(self.counts)
        # Smoothed IDF: a bigram found in every sentence still weighs a little.
        self.idf = {gram: math.log((1 + total) / (1 + n)) + 1 for gram, n in df.items()}
        self.vectors = [self.vector(counts) for counts in self.counts]

    def vector(self, counts: Counter[str]) -> dict[str, float]:
        weights = {gram: n * self.idf.get(gram, 1.0) for gram, n in counts.items()}
        norm = math.sqrt(sum(w * w for w in weights.values())) or 1.0
        return {gram: w / norm for gram, w in weights.items()}


def _cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    return sum(w * b.get(gram, 0.0) for gram, w in a.items())


def score_sentences(sentences: Sequence[Sentence], space: _Space | None = None) -> list[float]:
    """Each sentence's centrality plus the decision bonus."""
    space = space or _Space(sentences)
    centroid: dict[str, float] = {}
    for vector in space.vectors:
        for gram, weight in vector.items():
            centroid[gram] = centroid.get(gram, 0.0) + weight
    norm = math.sqrt(sum(w * w for w in centroid.values())) or 1.0
    unit = {gram: w / norm for gram, w in centroid.items()}
    return [
        _cosine(vector, unit) + (DECISION_BONUS if has_decision_word(s.text) else 0.0)
        for s, vector in zip(sentences, space.vectors, strict=True)
    ]


def assign_topics(
    sentences: Sequence[Sentence], agenda: Sequence[str], space: _Space | None = None
) -> list[int]:
    """For each sentence, the index of its agenda item (all 0 without an agenda)."""
    if not agenda:
        return [0] * len(sentences)
    space = space or _Space(sentences)
    titles = [space.vector(bigrams(title)) for title in agenda]
    assigned: list[int] = []
    current = 0
    for vector in space.vectors:
        similarities = [_cosine(vector, title) for title in titles]
        best = max(range(len(titles)), key=lambda i: similarities[i])
        if similarities[best] >= MIN_TOPIC_SIMILARITY:
            current = best
        assigned.append(current)
    return assigned


def points_per_topic(count: int) -> int:
    """How many sentences a topic of ``count`` keeps: about a third, 2 to 5."""
    return max(min(2, count), min(MAX_POINTS_PER_TOPIC, math.ceil(count / 3)))


def summarise(
    segments: Iterable[tuple[str, int, str]], agenda: Sequence[str], *, untitled: str = "議事の概要"
) -> Summary:
    """The extractive summary of ``(text, start_ms, speaker)`` segments (time order)
    under the agenda items; ``untitled`` heads the one topic of a meeting without."""
    sentences = split_sentences(segments)
    titles = list(agenda) or [untitled]
    if not sentences:
        return Summary([Topic(title) for title in titles], [])
    space = _Space(sentences)
    scores = score_sentences(sentences, space)
    topic_of = assign_topics(sentences, agenda, space)
    topics = []
    for index, title in enumerate(titles):
        members = [s for s, t in zip(sentences, topic_of, strict=True) if t == index]
        best = sorted(members, key=lambda s: (-scores[s.order], s.order))
        kept = sorted(best[: points_per_topic(len(members))], key=lambda s: s.order)
        topics.append(Topic(title, [s.text for s in kept]))
    return Summary(topics, decision_candidates(sentences))


def decision_candidates(sentences: Sequence[Sentence]) -> list[str]:
    """Sentences with decision words, in time order, each once."""
    seen: set[str] = set()
    found: list[str] = []
    for sentence in sentences:
        if has_decision_word(sentence.text) and sentence.text not in seen:
            seen.add(sentence.text)
            found.append(sentence.text)
    return found[:MAX_DECISIONS]
