"""whisper.cpp through pywhispercpp: one ggml model file (for example ggml-medium.bin)
named by YAKUBA_WHISPER_CPP_MODEL.

pywhispercpp downloads a model when it is given a model *name* or a path that does not
exist: we hand it only an existing file that starts with the ggml magic number.  The
ward dictionary goes in as the initial prompt, which steers Whisper towards its terms.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from django.conf import settings
from django.utils.translation import gettext as _

from yakuba.minutes.asr.base import (
    SAMPLE_RATE,
    EngineStatus,
    EngineUnavailable,
    Recognition,
    samples_float32,
)

NAME = "whisper.cpp"
# GGML_FILE_MAGIC 0x67676d6c as written by whisper.cpp's converters (little-endian),
# and the same number written big-endian by some older tools.
_MAGICS = (b"lmgg", b"ggml")
# whisper.cpp refuses input shorter than about 100 ms; a short segment is padded with
# silence up to one second.
_MIN_SAMPLES = SAMPLE_RATE
_NO_SPACES = {"ja", "zh"}
# ggml tensor types whisper.cpp models use: (elements per block, bytes per block).
_GGML_TYPES = {
    0: (1, 4),  # F32
    1: (1, 2),  # F16
    2: (32, 18),  # Q4_0
    3: (32, 20),  # Q4_1
    6: (32, 22),  # Q5_0
    7: (32, 24),  # Q5_1
    8: (32, 34),  # Q8_0
    10: (256, 84),  # Q2_K
    11: (256, 110),  # Q3_K
    12: (256, 144),  # Q4_K
    13: (256, 176),  # Q5_K
    14: (256, 210),  # Q6_K
    30: (1, 2),  # BF16
}

_REQUIRED_TENSORS = {b"encoder.conv1.weight", b"decoder.token_embedding.weight"}


class _Malformed(Exception):
    pass


def _layout_problem(path: Path) -> str | None:
    """Why ``path`` is not a whole whisper.cpp model, or None.  Walks the file's layout
    (header, mel filters, vocabulary, then each tensor's header and size) to its end
    without reading the weights.  whisper.cpp trusts its input: a cut-off or foreign
    file can crash the whole worker process inside the library, so it must not get one.
    """
    try:
        with path.open("rb") as file:
            _walk(file, os.fstat(file.fileno()).st_size)
    except _Malformed as exc:
        return str(exc)
    except OSError as exc:
        return exc.strerror or "unreadable"
    return None


def _ints(file: Any, count: int) -> tuple[int, ...]:
    data = file.read(4 * count)
    if len(data) != 4 * count:
        raise _Malformed("the file ends early")
    return struct.unpack(f"<{count}i", data)


def _walk(file: Any, size: int) -> None:
    magic = file.read(4)
    if magic not in _MAGICS:
        raise _Malformed("no ggml magic number")
    vocab, audio_ctx, *_dims, mels, _ftype = _ints(file, 11)
    if not (50_000 <= vocab <= 60_000 and 0 < audio_ctx <= 4096 and mels in (80, 128)):
        raise _Malformed("not a Whisper header")
    filter_mels, filter_fft = _ints(file, 2)
    if not (0 < filter_mels <= 512 and 0 < filter_fft <= 4096):
        raise _Malformed("bad mel filters")
    file.seek(4 * filter_mels * filter_fft, os.SEEK_CUR)
    (words,) = _ints(file, 1)
    if not 0 < words <= 100_000:
        raise _Malformed("bad vocabulary")
    for _word in range(words):
        (length,) = _ints(file, 1)
        if not 0 <= length <= 1024:
            raise _Malformed("bad vocabulary")
        file.seek(length, os.SEEK_CUR)
    names: set[bytes] = set()
    while file.tell() < size:
        dims, name_length, kind = _ints(file, 3)
        if not (1 <= dims <= 4 and 0 < name_length <= 256 and kind in _GGML_TYPES):
            raise _Malformed("bad tensor header")
        elements = math.prod(_ints(file, dims))
        block, block_bytes = _GGML_TYPES[kind]
        if elements <= 0 or elements % block:
            raise _Malformed("bad tensor shape")
        names.add(file.read(name_length))
        file.seek(elements // block * block_bytes, os.SEEK_CUR)
    if file.tell() != size:
        raise _Malformed("the file ends early")
    if not names >= _REQUIRED_TENSORS:
        raise _Malformed("not a Whisper model's tensors")


def _import() -> Any:
    try:
        import pywhispercpp.model
    except (ImportError, OSError) as exc:
        raise EngineUnavailable(
            _("pywhispercpp がインストールされていません (pip install pywhispercpp)。"),
            f"pywhispercpp is not installed (pip install pywhispercpp): {exc}",
        ) from exc
    return pywhispercpp.model


def _model_file() -> Path:
    configured = str(settings.MINUTES_WHISPER_CPP_MODEL or "")
    if not configured:
        raise EngineUnavailable(
            _(
                "whisper.cpp のモデルが設定されていません。ggml 形式のモデルファイル "
                "(ggml-*.bin) を YAKUBA_WHISPER_CPP_MODEL に設定してください。"
            ),
            "No whisper.cpp model: set YAKUBA_WHISPER_CPP_MODEL to a ggml model file (ggml-*.bin).",
        )
    path = Path(configured)
    if not path.is_file():
        raise EngineUnavailable(
            _("YAKUBA_WHISPER_CPP_MODEL のファイル %(path)s がありません。") % {"path": path},
            f"YAKUBA_WHISPER_CPP_MODEL: no file {path}.",
        )
    try:
        with path.open("rb") as file:
            magic = file.read(4)
    except OSError as exc:
        raise EngineUnavailable(
            _("whisper.cpp のモデル %(path)s を読み取れません。") % {"path": path},
            f"Cannot read the whisper.cpp model {path}: {exc.strerror}",
        ) from exc
    problem = "no ggml magic number" if magic not in _MAGICS else _layout_problem(path)
    if problem is not None:
        raise EngineUnavailable(
            _(
                "%(path)s は whisper.cpp (ggml 形式) のモデルではないか、途中で切れています。"
                "ggml-*.bin のファイルを指定してください。"
            )
            % {"path": path},
            f"{path} is not a whole whisper.cpp ggml model ({problem}); point "
            "YAKUBA_WHISPER_CPP_MODEL at a ggml-*.bin file.",
        )
    return path.resolve()


def status() -> EngineStatus:
    language = str(settings.MINUTES_ASR_LANGUAGE)
    try:
        _import()
        path = _model_file()
    except EngineUnavailable as exc:
        return EngineStatus(NAME, False, str(exc), language, True)
    detail = _("pywhispercpp %(version)s、モデル %(model)s、CPU %(threads)d スレッド") % {
        "version": importlib.metadata.version("pywhispercpp"),
        "model": path,
        "threads": int(settings.MINUTES_ASR_THREADS),
    }
    return EngineStatus(NAME, True, detail, language, True)


def load() -> WhisperCppEngine:
    module = _import()
    path = _model_file()
    try:
        model = module.Model(
            str(path),
            redirect_whispercpp_logs_to=None,  # /dev/null: its log is the worker's noise
            n_threads=int(settings.MINUTES_ASR_THREADS),
            print_progress=False,
            print_realtime=False,
            print_timestamps=False,
            no_context=True,
        )
    except (RuntimeError, ValueError, OSError) as exc:
        raise EngineUnavailable(
            _(
                "whisper.cpp のモデル %(model)s を読み込めません。"
                "ファイルが壊れているか、形式が違います。"
            )
            % {"model": path},
            f"whisper.cpp cannot load the model {path}: {exc}",
        ) from exc
    return WhisperCppEngine(model, str(path))


class WhisperCppEngine:
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
        if audio.size < _MIN_SAMPLES:
            audio = np.pad(audio, (0, _MIN_SAMPLES - audio.size))
        # pywhispercpp keeps parameters between calls: always pass the prompt, even empty.
        segments = self._model.transcribe(
            audio,
            language=self.language,
            initial_prompt=" ".join(hotwords),
            extract_probability=True,
        )
        # pywhispercpp strips each segment: glue them back as the language writes.
        glue = "" if self.language in _NO_SPACES else " "
        text = glue.join(str(segment.text) for segment in segments).strip()
        if not text:
            return Recognition("")
        probabilities = [
            float(segment.probability)
            for segment in segments
            if not math.isnan(float(segment.probability))
        ]
        confidence = (
            min(1.0, max(0.0, sum(probabilities) / len(probabilities))) if probabilities else None
        )
        return Recognition(text, confidence)
