"""Vosk (Kaldi): a model directory the operator unpacks from a file, for example
vosk-model-ja-0.22, named in YAKUBA_VOSK_MODEL_DIR (docs/minutes.md).

The language is read from the model's folder name (``vosk-model-small-ja-0.22`` is
Japanese); Japanese when the name does not say.  Vosk takes no hotwords in its large
models; the pipeline corrects its text with the ward dictionary instead.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _

from yakuba.minutes.asr.base import (
    SAMPLE_RATE,
    EngineStatus,
    EngineUnavailable,
    Recognition,
)

NAME = "vosk"
DEFAULT_LANGUAGE = "ja"
_LANGUAGE_IN_NAME = re.compile(r"vosk-model-(?:small-)?([a-z]{2,3})(?:[-_.]|$)")
# Languages written without spaces between words: Vosk puts a space after every word.
_NO_SPACES = {"ja", "zh", "cn"}
_CHUNK = SAMPLE_RATE * 2  # one second of PCM per call


def _model_dir() -> Path:
    """The configured model directory; EngineUnavailable when it is not a Vosk model."""
    configured = str(settings.MINUTES_VOSK_MODEL_DIR or "")
    if not configured:
        raise EngineUnavailable(
            _(
                "Vosk のモデルが設定されていません。モデルを展開したフォルダを "
                "YAKUBA_VOSK_MODEL_DIR に設定してください。"
            ),
            "No Vosk model: set YAKUBA_VOSK_MODEL_DIR to the unpacked model directory.",
        )
    path = Path(configured)
    if not path.is_dir():
        raise EngineUnavailable(
            _("YAKUBA_VOSK_MODEL_DIR のフォルダ %(path)s がありません。") % {"path": path},
            f"YAKUBA_VOSK_MODEL_DIR: no directory {path}.",
        )
    # Current models keep am/final.mdl and conf/; the oldest ones final.mdl at the top.
    if not ((path / "am" / "final.mdl").is_file() or (path / "final.mdl").is_file()):
        raise EngineUnavailable(
            _(
                "%(path)s は Vosk のモデルではありません (am/final.mdl がありません)。"
                "モデルの zip を展開したフォルダを指定してください。"
            )
            % {"path": path},
            f"{path} is not a Vosk model (no am/final.mdl); point YAKUBA_VOSK_MODEL_DIR "
            "at the directory unpacked from the model's zip.",
        )
    return path


def _import() -> Any:
    try:
        import vosk
    except (ImportError, OSError) as exc:
        raise EngineUnavailable(
            _("vosk がインストールされていません (pip install vosk)。"),
            f"vosk is not installed (pip install vosk): {exc}",
        ) from exc
    return vosk


def _language(path: Path | None) -> str:
    match = _LANGUAGE_IN_NAME.search(path.name.lower()) if path else None
    return match.group(1) if match else DEFAULT_LANGUAGE


def status() -> EngineStatus:
    path: Path | None = None
    try:
        _import()
        path = _model_dir()
    except EngineUnavailable as exc:
        return EngineStatus(NAME, False, str(exc), _language(path), False)
    detail = _("vosk %(version)s、モデル %(model)s、CPU 1 スレッド") % {
        "version": importlib.metadata.version("vosk"),
        "model": path,
    }
    return EngineStatus(NAME, True, detail, _language(path), False)


def load() -> VoskEngine:
    vosk = _import()
    path = _model_dir()
    vosk.SetLogLevel(-1)
    try:
        model = vosk.Model(str(path))
    except Exception as exc:  # vosk raises a bare Exception when the model is bad
        raise EngineUnavailable(
            _("Vosk のモデル %(model)s を読み込めません。ファイルが壊れているか、形式が違います。")
            % {"model": path},
            f"Vosk cannot load the model {path}: {exc}",
        ) from exc
    return VoskEngine(vosk, model, path)


class VoskEngine:
    name = NAME
    supports_hotwords = False

    def __init__(self, vosk: Any, model: Any, path: Path) -> None:
        self._vosk = vosk
        self._model = model
        self.model_label = str(path)
        self.language = _language(path)

    def recognise(self, pcm: bytes, *, hotwords: Sequence[str] = ()) -> Recognition:
        if not pcm:
            return Recognition("")
        recogniser = self._vosk.KaldiRecognizer(self._model, SAMPLE_RATE)
        recogniser.SetWords(True)
        results: list[dict[str, Any]] = []
        for offset in range(0, len(pcm), _CHUNK):
            # True when Vosk found an end of utterance inside the segment.
            if recogniser.AcceptWaveform(pcm[offset : offset + _CHUNK]):
                results.append(json.loads(recogniser.Result()))
        results.append(json.loads(recogniser.FinalResult()))
        texts = [str(result.get("text", "")).strip() for result in results]
        words = [word for result in results for word in result.get("result", [])]
        glue = "" if self.language in _NO_SPACES else " "
        text = glue.join(t.replace(" ", glue) for t in texts if t)
        confidences = [float(word["conf"]) for word in words if "conf" in word]
        confidence = (
            min(1.0, max(0.0, sum(confidences) / len(confidences))) if confidences else None
        )
        return Recognition(text, confidence)
