"""Speech-recognition engines: pocketsphinx on espeak-ng speech, every other engine's
exact reason for being unusable, ``yakuba asr check`` and the W301 system check.

Only pocketsphinx has a model here (it ships in the package); the Japanese engines are
tested for what they say when their model is missing or malformed.
"""

from __future__ import annotations

import io
import json
import math
import struct
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.core.management import CommandError, call_command
from pytest_django.fixtures import Settings as SettingsWrapper

from yakuba.minutes import asr, audio
from yakuba.minutes.asr.base import EngineUnavailable

from .conftest import speak

SPOKEN = "good morning everyone thank you very much see you tomorrow morning"
EXPECTED = {"good", "morning", "everyone", "thank", "you", "very", "much", "see", "tomorrow"}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "asr"
    path.mkdir()
    return path


@pytest.fixture
def no_models(settings: SettingsWrapper) -> SettingsWrapper:
    settings.MINUTES_VOSK_MODEL_DIR = ""
    settings.MINUTES_FASTER_WHISPER_MODEL_DIR = ""
    settings.MINUTES_WHISPER_CPP_MODEL = ""
    settings.MINUTES_POCKETSPHINX_MODEL_DIR = ""
    settings.MINUTES_FASTER_WHISPER_DEVICE = "cpu"
    settings.MINUTES_FASTER_WHISPER_COMPUTE_TYPE = "int8"
    settings.MINUTES_ASR_ENGINE = "pocketsphinx"
    return settings


def pcm_of(text: str, folder: Path) -> bytes:
    wav = folder / "decoded.wav"
    audio.decode_to_wav(speak(text, folder / "spoken.wav"), wav)
    return audio.read_pcm(wav, 0, 10**9)


# --- pocketsphinx -------------------------------------------------------------------


def test_pocketsphinx_recognises_english_speech(no_models: SettingsWrapper, folder: Path) -> None:
    engine = asr.load_engine()  # the configured one

    result = engine.recognise(pcm_of(SPOKEN, folder))

    assert engine.name == "pocketsphinx"
    assert engine.language == "en"
    assert not engine.supports_hotwords
    heard = set(result.text.split())
    assert len(heard & EXPECTED) >= 2, result.text
    assert result.confidence is not None
    assert 0.0 <= result.confidence <= 1.0


def test_pocketsphinx_returns_no_text_for_silence(no_models: SettingsWrapper) -> None:
    engine = asr.load_engine("pocketsphinx")
    assert engine.recognise(b"").text == ""
    assert engine.recognise(bytes(16_000 * 2)).text == ""


def test_pocketsphinx_is_usable_with_the_packaged_model(no_models: SettingsWrapper) -> None:
    status = asr.engine_status("pocketsphinx")
    assert status.usable
    assert "pocketsphinx 5." in status.detail
    assert "en-us" in status.detail


def test_pocketsphinx_names_a_missing_model_directory(
    no_models: SettingsWrapper, folder: Path
) -> None:
    no_models.MINUTES_POCKETSPHINX_MODEL_DIR = str(folder / "nowhere")
    status = asr.engine_status("pocketsphinx")
    assert not status.usable
    assert "YAKUBA_POCKETSPHINX_MODEL_DIR" in status.detail
    assert "nowhere" in status.detail
    no_models.MINUTES_POCKETSPHINX_MODEL_DIR = str(folder)
    assert "mdef" in asr.engine_status("pocketsphinx").detail


# --- engines without models --------------------------------------------------------


@pytest.mark.parametrize(
    ("engine", "variable"),
    [
        ("vosk", "YAKUBA_VOSK_MODEL_DIR"),
        ("faster-whisper", "YAKUBA_FASTER_WHISPER_MODEL_DIR"),
        ("whisper.cpp", "YAKUBA_WHISPER_CPP_MODEL"),
    ],
)
def test_an_engine_without_a_model_says_which_variable_to_set(
    no_models: SettingsWrapper, engine: str, variable: str
) -> None:
    status = asr.engine_status(engine)
    assert not status.usable
    assert variable in status.detail
    assert "設定" in status.detail

    with pytest.raises(EngineUnavailable) as error:
        asr.load_engine(engine)
    assert variable in str(error.value)
    assert variable in error.value.english


SETTING = {
    "vosk": "MINUTES_VOSK_MODEL_DIR",
    "faster-whisper": "MINUTES_FASTER_WHISPER_MODEL_DIR",
    "whisper.cpp": "MINUTES_WHISPER_CPP_MODEL",
}


@pytest.mark.parametrize("engine", list(SETTING))
def test_an_engine_names_a_missing_model_path(
    no_models: SettingsWrapper, folder: Path, engine: str
) -> None:
    setattr(no_models, SETTING[engine], str(folder / "missing-model"))
    status = asr.engine_status(engine)
    assert not status.usable
    assert str(folder / "missing-model") in status.detail
    assert "ありません" in status.detail
    with pytest.raises(EngineUnavailable, match="missing-model"):
        asr.load_engine(engine)


def test_vosk_needs_a_model_directory_not_any_folder(
    no_models: SettingsWrapper, folder: Path
) -> None:
    model = folder / "vosk-model-small-en-us-0.15"
    model.mkdir()
    no_models.MINUTES_VOSK_MODEL_DIR = str(model)
    assert "am/final.mdl" in asr.engine_status("vosk").detail

    (model / "am").mkdir()
    (model / "am" / "final.mdl").write_bytes(b"not a model")
    (model / "conf").mkdir()
    status = asr.engine_status("vosk")
    assert status.usable
    assert status.language == "en"
    assert "vosk 0." in status.detail
    with pytest.raises(EngineUnavailable, match="読み込めません"):
        asr.load_engine("vosk")  # the shape is right, the contents are not


def test_vosk_expects_japanese_when_the_folder_name_does_not_say(
    no_models: SettingsWrapper, folder: Path
) -> None:
    (folder / "am").mkdir()
    (folder / "am" / "final.mdl").write_bytes(b"x")
    no_models.MINUTES_VOSK_MODEL_DIR = str(folder)
    assert asr.engine_status("vosk").language == "ja"


def test_faster_whisper_names_each_missing_model_file(
    no_models: SettingsWrapper, folder: Path
) -> None:
    no_models.MINUTES_FASTER_WHISPER_MODEL_DIR = str(folder)
    (folder / "config.json").write_text("{}")
    detail = asr.engine_status("faster-whisper").detail
    assert "model.bin" in detail
    assert "tokenizer.json" in detail
    assert "config.json" not in detail

    (folder / "model.bin").write_bytes(b"not weights")
    (folder / "tokenizer.json").write_text("{}")
    status = asr.engine_status("faster-whisper")
    assert status.usable
    assert status.supports_hotwords
    assert "cpu int8" in status.detail
    assert str(folder) in status.detail
    with pytest.raises(EngineUnavailable, match="読み込めません") as error:
        asr.load_engine("faster-whisper")
    assert "cannot load" in error.value.english


def test_faster_whisper_refuses_an_unsupported_compute_type(
    no_models: SettingsWrapper, folder: Path
) -> None:
    for name in ("model.bin", "config.json", "tokenizer.json"):
        (folder / name).write_text("{}")
    no_models.MINUTES_FASTER_WHISPER_MODEL_DIR = str(folder)
    no_models.MINUTES_FASTER_WHISPER_COMPUTE_TYPE = "int3"
    detail = asr.engine_status("faster-whisper").detail
    assert "YAKUBA_FASTER_WHISPER_COMPUTE_TYPE=int3" in detail


def ggml_model(path: Path) -> Path:
    """A file laid out as whisper.cpp's converter writes one (tiny, meaningless)."""
    header = struct.pack("<4s11i", b"lmgg", 51_865, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1)
    filters = struct.pack("<2i", 80, 201) + bytes(4 * 80 * 201)
    words = [b"!", b"hello", b"\xe4\xbc\x9a"]
    vocab = struct.pack("<i", len(words)) + b"".join(
        struct.pack("<i", len(word)) + word for word in words
    )
    tensors = b""
    for name, dims, kind, size in (
        (b"encoder.conv1.weight", (3, 80, 4), 1, 2),
        (b"decoder.token_embedding.weight", (4, 2), 0, 4),
    ):
        tensors += struct.pack(f"<3i{len(dims)}i", len(dims), len(name), kind, *dims) + name
        tensors += bytes(size * math.prod(dims))
    path.write_bytes(header + filters + vocab + tensors)
    return path


def test_whisper_cpp_takes_only_a_whole_ggml_file(no_models: SettingsWrapper, folder: Path) -> None:
    """whisper.cpp would crash the worker on a foreign or cut-off file."""
    model = ggml_model(folder / "ggml-small.bin")
    no_models.MINUTES_WHISPER_CPP_MODEL = str(model)
    status = asr.engine_status("whisper.cpp")
    assert status.usable
    assert status.supports_hotwords
    assert "pywhispercpp 1." in status.detail
    assert str(model) in status.detail

    whole = model.read_bytes()
    for content in (b"PK\x03\x04 a zip file", b"lmgg" + bytes(200), whole[:-1]):
        model.write_bytes(content)
        status = asr.engine_status("whisper.cpp")
        assert not status.usable, content[:8]
        assert "ggml" in status.detail
        with pytest.raises(EngineUnavailable, match="ggml"):
            asr.load_engine("whisper.cpp")


def test_whisper_cpp_never_takes_a_model_name(no_models: SettingsWrapper) -> None:
    """pywhispercpp would download "base"; we refuse anything but an existing file."""
    no_models.MINUTES_WHISPER_CPP_MODEL = "base"
    with pytest.raises(EngineUnavailable, match="YAKUBA_WHISPER_CPP_MODEL"):
        asr.load_engine("whisper.cpp")


def test_an_unknown_engine_is_refused(no_models: SettingsWrapper) -> None:
    with pytest.raises(EngineUnavailable, match="pocketsphinx"):
        asr.load_engine("julius")


# --- yakuba asr check and the system check -------------------------------------------


def run_check(*args: str) -> str:
    out = io.StringIO()
    call_command("asr", "check", *args, stdout=out)
    return out.getvalue()


def test_asr_check_lists_every_engine(no_models: SettingsWrapper) -> None:
    lines = run_check().splitlines()

    assert [line.split()[1] if line.startswith("*") else line.split()[0] for line in lines] == [
        "pocketsphinx",
        "vosk",
        "faster-whisper",
        "whisper.cpp",
    ]
    assert lines[0].startswith("* pocketsphinx")
    assert " usable " in lines[0]
    assert "NOT usable" in lines[1]
    assert "YAKUBA_VOSK_MODEL_DIR" in lines[1]
    assert "YAKUBA_WHISPER_CPP_MODEL" in lines[3]


def test_asr_check_json(no_models: SettingsWrapper) -> None:
    report = json.loads(run_check("--json"))

    assert report["configured"] == "pocketsphinx"
    engines = {engine["name"]: engine for engine in report["engines"]}
    assert list(engines) == list(asr.ENGINE_NAMES)
    assert engines["pocketsphinx"]["usable"]
    assert engines["pocketsphinx"]["configured"]
    assert not engines["faster-whisper"]["usable"]
    assert engines["faster-whisper"]["supports_hotwords"]
    assert "YAKUBA_FASTER_WHISPER_MODEL_DIR" in engines["faster-whisper"]["detail"]


def test_asr_check_fails_when_the_configured_engine_is_unusable(
    no_models: SettingsWrapper,
) -> None:
    no_models.MINUTES_ASR_ENGINE = "vosk"
    out = io.StringIO()
    with pytest.raises(CommandError) as error:
        call_command("asr", "check", stdout=out)
    assert error.value.returncode == 1
    assert "YAKUBA_ASR_ENGINE=vosk" in str(error.value)
    assert out.getvalue().splitlines()[1].startswith("* vosk")  # the report still printed

    with pytest.raises(CommandError):
        call_command("asr", "check", "--json", stdout=io.StringIO())


def w301(settings: SettingsWrapper) -> list[str]:
    return [str(m.msg) for m in run_checks(tags=["yakuba"]) if m.id == "minutes.W301"]


def test_the_system_check_warns_when_the_configured_engine_is_unusable(
    no_models: SettingsWrapper,
) -> None:
    assert w301(no_models) == []

    no_models.MINUTES_ASR_ENGINE = "faster-whisper"
    [message] = w301(no_models)
    assert "YAKUBA_ASR_ENGINE=faster-whisper" in message
    assert "YAKUBA_FASTER_WHISPER_MODEL_DIR" in message
