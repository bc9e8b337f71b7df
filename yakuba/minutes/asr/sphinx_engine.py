"""pocketsphinx: CMU's small recogniser, with the US English model that ships in the
package (or an acoustic model in YAKUBA_POCKETSPHINX_MODEL_DIR).

It is single-threaded and fast (real-time factor about 0.4 on one core), and poor on
synthetic voices: the tests match its output tolerantly.  It takes no hotwords; the
pipeline corrects its text with the ward dictionary instead.
"""

from __future__ import annotations

import importlib.metadata
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

NAME = "pocketsphinx"
# Files without which pocketsphinx cannot load an acoustic model.
_ACOUSTIC_FILES = ("mdef", "means", "variances", "transition_matrices")


def _settings_dir() -> str:
    return str(settings.MINUTES_POCKETSPHINX_MODEL_DIR or "")


def _language() -> str:
    # The package's model is US English; an operator's own model speaks the configured one.
    return str(settings.MINUTES_ASR_LANGUAGE) if _settings_dir() else "en"


def _model() -> tuple[dict[str, str], str]:
    """The decoder's model arguments and a label; EngineUnavailable when missing."""
    try:
        import pocketsphinx
    except ImportError as exc:
        raise EngineUnavailable(
            _("pocketsphinx がインストールされていません (pip install pocketsphinx)。"),
            f"pocketsphinx is not installed (pip install pocketsphinx): {exc}",
        ) from exc
    configured = _settings_dir()
    hmm = Path(configured or pocketsphinx.get_model_path("en-us/en-us"))
    if not hmm.is_dir():
        raise EngineUnavailable(
            _("YAKUBA_POCKETSPHINX_MODEL_DIR のフォルダ %(path)s がありません。") % {"path": hmm},
            f"YAKUBA_POCKETSPHINX_MODEL_DIR: no directory {hmm}.",
        )
    missing = [name for name in _ACOUSTIC_FILES if not (hmm / name).is_file()]
    if missing:
        raise EngineUnavailable(
            _("%(path)s は pocketsphinx の音響モデルではありません (%(files)s がありません)。")
            % {"path": hmm, "files": ", ".join(missing)},
            f"{hmm} is not a pocketsphinx acoustic model (missing {', '.join(missing)}); "
            "check YAKUBA_POCKETSPHINX_MODEL_DIR.",
        )
    model = {"hmm": str(hmm)}
    # An operator's folder may bring its own language model and dictionary.
    for key, patterns in (("lm", ("*.lm.bin", "*.lm")), ("dict", ("*.dict",))):
        found = sorted(path for pattern in patterns for path in hmm.glob(pattern))
        if configured and found:
            model[key] = str(found[0])
    return model, str(hmm)


def status() -> EngineStatus:
    try:
        _model_args, label = _model()
    except EngineUnavailable as exc:
        return EngineStatus(NAME, False, str(exc), _language(), False)
    version = importlib.metadata.version("pocketsphinx")
    detail = _("pocketsphinx %(version)s、モデル %(model)s、CPU 1 スレッド") % {
        "version": version,
        "model": label,
    }
    return EngineStatus(NAME, True, detail, _language(), False)


def load() -> SphinxEngine:
    model, label = _model()
    return SphinxEngine(model, label)


class SphinxEngine:
    name = NAME
    supports_hotwords = False

    def __init__(self, model: dict[str, str], label: str) -> None:
        from pocketsphinx import Decoder

        self.language = _language()
        self.model_label = label
        try:
            self._decoder: Any = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL", **model)
        except (RuntimeError, ValueError) as exc:
            raise EngineUnavailable(
                _(
                    "pocketsphinx のモデル %(model)s を読み込めません。"
                    "ファイルが壊れているか、形式が違います。"
                )
                % {"model": label},
                f"pocketsphinx cannot load the model {label}: {exc}",
            ) from exc

    def recognise(self, pcm: bytes, *, hotwords: Sequence[str] = ()) -> Recognition:
        if not pcm.strip(b"\x00"):
            # Digital silence (a muted track): the decoder would make up a word or two.
            return Recognition("")
        decoder = self._decoder
        decoder.start_utt()
        # full_utt: the whole segment at once, so cepstral mean normalisation sees all of it.
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        if hypothesis is None or not hypothesis.hypstr.strip():
            return Recognition("")
        return Recognition(hypothesis.hypstr.strip(), _confidence(decoder.seg()))


def _confidence(segments: Any) -> float | None:
    """The mean posterior probability of the recognised words (from the word lattice
    that the default best-path search builds anyway); silences and fillers left out."""
    posteriors = [
        float(segment.prob) for segment in segments if not segment.word.startswith(("<", "[", "++"))
    ]
    if not posteriors:
        return None
    return min(1.0, max(0.0, sum(posteriors) / len(posteriors)))
