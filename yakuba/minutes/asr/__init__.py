"""Speech-recognition engines, chosen by settings.MINUTES_ASR_ENGINE.

Each engine lives in a module of its own (named ``*_engine`` so that it never shadows
the package it wraps) with two functions: ``status()`` says whether the engine can run
here, without loading its model, and ``load()`` makes an engine or raises
``EngineUnavailable``.  Engine modules are imported only when asked for: a web worker
that never transcribes never imports CTranslate2 or whisper.cpp.

Nothing is cached: a transcription job loads its engine once and drops it at the end,
so a model the operator replaces is picked up by the next job.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from django.conf import settings
from django.utils.translation import gettext as _

from yakuba.minutes.asr.base import Engine, EngineStatus, EngineUnavailable

ENGINE_NAMES = ("pocketsphinx", "vosk", "faster-whisper", "whisper.cpp")

_MODULES = {
    "pocketsphinx": "yakuba.minutes.asr.sphinx_engine",
    "vosk": "yakuba.minutes.asr.vosk_engine",
    "faster-whisper": "yakuba.minutes.asr.faster_whisper_engine",
    "whisper.cpp": "yakuba.minutes.asr.whisper_cpp_engine",
}


def _module(name: str) -> ModuleType:
    if name not in _MODULES:
        raise EngineUnavailable(
            _("音声認識エンジン「%(name)s」はありません。使えるのは %(names)s です。")
            % {"name": name, "names": ", ".join(ENGINE_NAMES)},
            f"No speech-recognition engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}.",
        )
    return importlib.import_module(_MODULES[name])


def engine_status(name: str) -> EngineStatus:
    """Whether engine ``name`` can run here and why not (the model is not loaded)."""
    status: EngineStatus = _module(name).status()
    return status


def all_statuses() -> list[EngineStatus]:
    return [engine_status(name) for name in ENGINE_NAMES]


def load_engine(name: str | None = None) -> Engine:
    """A ready engine (None: the configured one).  Raises EngineUnavailable, whose
    message says what to install or configure."""
    engine: Engine = _module(name or settings.MINUTES_ASR_ENGINE).load()
    return engine


__all__ = [
    "ENGINE_NAMES",
    "Engine",
    "EngineStatus",
    "EngineUnavailable",
    "all_statuses",
    "engine_status",
    "load_engine",
]
