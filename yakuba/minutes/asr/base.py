"""The one interface every speech-recognition engine implements.

An engine takes one segment of speech as 16 kHz mono 16-bit little-endian PCM and
returns its text.  Engines are made once per job (loading a model takes seconds) and
used from one thread.  ``status()`` says, without loading the model, whether the engine
can run here and why not; ``yakuba asr check`` prints it for every engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

SAMPLE_RATE = 16_000
SAMPLE_WIDTH = 2  # bytes: signed 16-bit little-endian
BYTES_PER_SECOND = SAMPLE_RATE * SAMPLE_WIDTH


def samples_float32(pcm: bytes) -> Any:
    """``pcm`` (s16le) as float32 samples in [-1, 1), what the Whisper engines take."""
    import numpy as np

    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


class EngineUnavailable(RuntimeError):
    """The engine cannot run here: its package or model is missing.  The message says
    what to install or configure, in Japanese; ``english`` says it in English."""

    def __init__(self, message: str, english: str = "") -> None:
        super().__init__(message)
        self.english = english or message


@dataclass(frozen=True)
class Recognition:
    text: str
    # 0..1 where the engine gives a score (averaged over words or tokens); else None.
    confidence: float | None = None


@dataclass(frozen=True)
class EngineStatus:
    name: str
    usable: bool
    # What is wrong, or what will be used (package version, model path, device).
    detail: str
    language: str
    supports_hotwords: bool


class Engine(Protocol):
    name: str
    language: str
    # True when ``recognise`` uses ``hotwords`` (the ward dictionary) in decoding;
    # otherwise the pipeline corrects the text afterwards.
    supports_hotwords: bool
    # A label of the model in use, kept with each job (a path or a package name).
    model_label: str

    def recognise(self, pcm: bytes, *, hotwords: Sequence[str] = ()) -> Recognition:
        """The text of ``pcm`` (16 kHz mono s16le).  Raises nothing for silence: it
        returns an empty text."""
        ...
