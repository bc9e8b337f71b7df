"""faster-whisper (CTranslate2): a Whisper model converted offline, in the directory
named by YAKUBA_FASTER_WHISPER_MODEL_DIR, on the CPU or a GPU.

It must never reach the network.  faster-whisper downloads when given a model *name*,
and fetches a tokenizer from the Hugging Face hub when the directory lacks
``tokenizer.json``: we pass only an existing directory that holds one, with
``local_files_only``, and set HF_HUB_OFFLINE before the hub library is imported.
"""

from __future__ import annotations

import importlib.metadata
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _

from yakuba.minutes.asr.base import EngineStatus, EngineUnavailable, Recognition, samples_float32

# huggingface_hub, imported with faster_whisper, never downloads: yakuba/settings.py sets
# HF_HUB_OFFLINE=1 before any app is loaded.

NAME = "faster-whisper"
# model.bin holds the weights, config.json the architecture, tokenizer.json the
# vocabulary (without it faster-whisper would fetch one from the internet).
_MODEL_FILES = ("model.bin", "config.json", "tokenizer.json")


def _import() -> tuple[Any, Any]:
    try:
        import ctranslate2
        import faster_whisper
    except (ImportError, OSError) as exc:
        raise EngineUnavailable(
            _("faster-whisper がインストールされていません (pip install faster-whisper)。"),
            f"faster-whisper is not installed (pip install faster-whisper): {exc}",
        ) from exc
    return faster_whisper, ctranslate2


def _model_dir() -> Path:
    configured = str(settings.MINUTES_FASTER_WHISPER_MODEL_DIR or "")
    if not configured:
        raise EngineUnavailable(
            _(
                "faster-whisper のモデルが設定されていません。CTranslate2 形式に変換した"
                "モデルのフォルダを YAKUBA_FASTER_WHISPER_MODEL_DIR に設定してください。"
            ),
            "No faster-whisper model: set YAKUBA_FASTER_WHISPER_MODEL_DIR to a "
            "CTranslate2 model directory.",
        )
    path = Path(configured)
    if not path.is_dir():
        raise EngineUnavailable(
            _("YAKUBA_FASTER_WHISPER_MODEL_DIR のフォルダ %(path)s がありません。")
            % {"path": path},
            f"YAKUBA_FASTER_WHISPER_MODEL_DIR: no directory {path}.",
        )
    missing = [name for name in _MODEL_FILES if not (path / name).is_file()]
    if missing:
        raise EngineUnavailable(
            _(
                "%(path)s は faster-whisper のモデルではありません (%(files)s がありません)。"
                "CTranslate2 形式に変換したモデルのフォルダを指定してください。"
            )
            % {"path": path, "files": ", ".join(missing)},
            f"{path} is not a faster-whisper model (missing {', '.join(missing)}); point "
            "YAKUBA_FASTER_WHISPER_MODEL_DIR at a CTranslate2 Whisper model directory.",
        )
    return path


def _device(ctranslate2: Any) -> str:
    """The device to use: CUDA when asked for (or 'auto' and a GPU is there)."""
    wanted = str(settings.MINUTES_FASTER_WHISPER_DEVICE)
    gpus = int(ctranslate2.get_cuda_device_count())
    if wanted == "cuda" and not gpus:
        raise EngineUnavailable(
            _(
                "YAKUBA_FASTER_WHISPER_DEVICE=cuda ですが GPU が見つかりません。"
                "cpu にするか、GPU のドライバを確認してください。"
            ),
            "YAKUBA_FASTER_WHISPER_DEVICE=cuda but no CUDA device is visible; use cpu or "
            "check the GPU driver.",
        )
    return "cuda" if wanted == "cuda" or (wanted == "auto" and gpus) else "cpu"


def _check_compute_type(ctranslate2: Any, device: str) -> str:
    compute_type = str(settings.MINUTES_FASTER_WHISPER_COMPUTE_TYPE)
    supported = sorted(ctranslate2.get_supported_compute_types(device))
    if compute_type not in ("default", "auto", *supported):
        raise EngineUnavailable(
            _(
                "YAKUBA_FASTER_WHISPER_COMPUTE_TYPE=%(type)s はこの %(device)s では使えません "
                "(使えるのは %(supported)s)。"
            )
            % {"type": compute_type, "device": device, "supported": ", ".join(supported)},
            f"YAKUBA_FASTER_WHISPER_COMPUTE_TYPE={compute_type} is not supported on "
            f"{device} (supported: {', '.join(supported)}).",
        )
    return compute_type


def _checked() -> tuple[Any, Path, str, str]:
    faster_whisper, ctranslate2 = _import()
    path = _model_dir()
    device = _device(ctranslate2)
    return faster_whisper, path, device, _check_compute_type(ctranslate2, device)


def status() -> EngineStatus:
    language = str(settings.MINUTES_ASR_LANGUAGE)
    try:
        _module, path, device, compute_type = _checked()
    except EngineUnavailable as exc:
        return EngineStatus(NAME, False, str(exc), language, True)
    threads = int(settings.MINUTES_ASR_THREADS)
    detail = _(
        "faster-whisper %(version)s (CTranslate2 %(ct2)s)、モデル %(model)s、"
        "%(device)s %(type)s、%(threads)d スレッド"
    ) % {
        "version": importlib.metadata.version("faster-whisper"),
        "ct2": importlib.metadata.version("ctranslate2"),
        "model": path,
        "device": device,
        "type": compute_type,
        "threads": threads,
    }
    return EngineStatus(NAME, True, detail, language, True)


def load() -> FasterWhisperEngine:
    faster_whisper, path, device, compute_type = _checked()
    try:
        model = faster_whisper.WhisperModel(
            str(path),
            device=device,
            compute_type=compute_type,
            cpu_threads=int(settings.MINUTES_ASR_THREADS),
            local_files_only=True,
        )
    except (RuntimeError, ValueError, OSError) as exc:
        raise EngineUnavailable(
            _(
                "faster-whisper のモデル %(model)s を読み込めません。"
                "ファイルが壊れているか、形式が違います。"
            )
            % {"model": path},
            f"faster-whisper cannot load the model {path} on {device}: {exc}",
        ) from exc
    return FasterWhisperEngine(model, f"{path} ({device}, {compute_type})")


class FasterWhisperEngine:
    name = NAME
    supports_hotwords = True

    def __init__(self, model: Any, label: str) -> None:
        self._model = model
        self.model_label = label
        self.language = str(settings.MINUTES_ASR_LANGUAGE)

    def recognise(self, pcm: bytes, *, hotwords: Sequence[str] = ()) -> Recognition:
        if not pcm:
            return Recognition("")
        audio = samples_float32(pcm)
        segments, _info = self._model.transcribe(
            audio,
            language=self.language,
            vad_filter=False,  # our VAD already cut the recording into speech
            hotwords=" ".join(hotwords) or None,
            condition_on_previous_text=False,
        )
        segments = list(segments)  # the generator does the decoding
        # Whisper puts a space before each English segment and none in Japanese.
        text = "".join(segment.text for segment in segments).strip()
        if not segments or not text:
            return Recognition("")
        mean_logprob = sum(float(s.avg_logprob) for s in segments) / len(segments)
        return Recognition(text, min(1.0, max(0.0, math.exp(mean_logprob))))
