"""Voice-activity detection: where in a recording people speak.

webrtcvad classifies 30 ms frames; a ring of the last 300 ms smooths its decisions (the
classic approach of py-webrtcvad's example): a region opens when 90 % of the ring is
speech and closes when 90 % is not.  Then short gaps are bridged, blips dropped, long
regions cut at their quietest frame (an engine gets at most ``max_segment_ms`` of
audio, and a cut in a pause splits no word), and each region padded a little so the
first and last syllables are not clipped.

The file is read frame by frame.  Memory is one float per frame (4 bytes per 30 ms,
1.4 MB for a 3-hour meeting), kept to find the quietest frame; the audio itself is
never held.  The result depends only on the file and the arguments.
"""

from __future__ import annotations

import collections
import wave
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import webrtcvad
from django.conf import settings

from yakuba.minutes.asr.base import SAMPLE_RATE, SAMPLE_WIDTH
from yakuba.minutes.audio import AudioError, check_wav

FRAME_MS = 30
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
RING_FRAMES = 10  # 300 ms of smoothing
TRIGGER_SHARE = 0.9
MERGE_GAP_MS = 300  # a breath inside a sentence does not end the region
MIN_REGION_MS = 200  # a cough or a click is not speech
PAD_MS = 150
# Where to look for the quietest frame when a region is too long: this much before the
# limit (a piece shorter than half the limit is never cut off).
CUT_WINDOW_MS = 3_000


@dataclass(frozen=True)
class Region:
    start_ms: int
    end_ms: int

    @property
    def duration_ms(self) -> int:
        return self.end_ms - self.start_ms


def speech_regions(
    wav_path: Path | str,
    *,
    aggressiveness: int | None = None,
    max_segment_ms: int | None = None,
) -> list[Region]:
    """The speech regions of ``wav_path`` (16 kHz mono s16 WAV, as ``decode_to_wav``
    writes), in time order, none overlapping, none longer than ``max_segment_ms``.

    Defaults: settings.MINUTES_VAD_AGGRESSIVENESS (0 keeps most, 3 drops most) and
    settings.MINUTES_MAX_SEGMENT_SECONDS."""
    if aggressiveness is None:
        aggressiveness = settings.MINUTES_VAD_AGGRESSIVENESS
    if max_segment_ms is None:
        max_segment_ms = settings.MINUTES_MAX_SEGMENT_SECONDS * 1000
    if max_segment_ms < 4 * FRAME_MS + 2 * PAD_MS:
        raise ValueError(f"max_segment_ms {max_segment_ms} is too short")
    vad = webrtcvad.Vad(aggressiveness)
    energies = array("f")
    voiced: list[bool] = []
    duration_ms = 0
    with wave.open(str(wav_path), "rb") as wav:
        check_wav(wav)
        duration_ms = wav.getnframes() * 1000 // SAMPLE_RATE
        for frame in _frames(wav):
            voiced.append(vad.is_speech(frame, SAMPLE_RATE))
            samples = np.frombuffer(frame, dtype="<i2").astype(np.float32)
            energies.append(float(np.dot(samples, samples)))
    spans = _triggered(voiced)
    del voiced
    spans = _merged(spans, MERGE_GAP_MS // FRAME_MS)
    spans = [(a, b) for a, b in spans if (b - a) * FRAME_MS >= MIN_REGION_MS]
    # Padding must not push a cut piece over the limit.
    limit = (max_segment_ms - 2 * PAD_MS) // FRAME_MS
    pieces = [piece for span in spans for piece in _cut(span, energies, limit)]
    return _padded(pieces, duration_ms)


def _frames(wav: wave.Wave_read) -> Iterator[bytes]:
    """Whole 30 ms frames (a last partial frame is ignored: webrtcvad takes only whole)."""
    size = FRAME_SAMPLES * SAMPLE_WIDTH
    while len(frame := wav.readframes(FRAME_SAMPLES)) == size:
        yield frame


def _triggered(voiced: list[bool]) -> list[tuple[int, int]]:
    """Regions as [start, end) frame indices, by the padding ring."""
    ring: collections.deque[bool] = collections.deque(maxlen=RING_FRAMES)
    spans: list[tuple[int, int]] = []
    start: int | None = None
    for index, is_speech in enumerate(voiced):
        ring.append(is_speech)
        if start is None:
            if sum(ring) > TRIGGER_SHARE * RING_FRAMES:
                start = index - len(ring) + 1
                ring.clear()
        elif len(ring) - sum(ring) > TRIGGER_SHARE * RING_FRAMES:
            # The ring is almost all silence: the speech ended where the ring began.
            spans.append((start, index - len(ring) + 1))
            start = None
            ring.clear()
    if start is not None:
        spans.append((start, len(voiced)))
    return [(a, b) for a, b in spans if b > a]


def _merged(spans: list[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start - merged[-1][1] < gap:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _cut(span: tuple[int, int], energies: array[float], limit: int) -> Iterator[tuple[int, int]]:
    """``span`` in pieces of at most ``limit`` frames, each cut at the quietest frame
    of the last CUT_WINDOW_MS before the limit (the earliest of equals: deterministic)."""
    start, end = span
    window = max(1, min(limit // 2, CUT_WINDOW_MS // FRAME_MS))
    while end - start > limit:
        low, high = start + limit - window, start + limit
        cut = min(range(low, high + 1), key=lambda index: (energies[index], index))
        yield start, cut
        start = cut
    yield start, end


def _padded(pieces: list[tuple[int, int]], duration_ms: int) -> list[Region]:
    """Regions in ms, padded by PAD_MS within the file; a pad never reaches into the
    next region, and a cut made inside speech is not padded (the pieces would overlap)."""
    pad = PAD_MS // FRAME_MS
    regions: list[Region] = []
    for index, (start, end) in enumerate(pieces):
        before = pieces[index - 1][1] if index else None
        after = pieces[index + 1][0] if index + 1 < len(pieces) else None
        if before != start:
            floor = 0 if before is None else (before + start + 1) // 2
            start = max(floor, start - pad)
        if after != end:
            ceiling = None if after is None else (end + after) // 2
            end = end + pad if ceiling is None else min(ceiling, end + pad)
        regions.append(Region(start * FRAME_MS, min(duration_ms, end * FRAME_MS)))
    return [region for region in regions if region.end_ms > region.start_ms]


__all__ = ["AudioError", "Region", "speech_regions"]
