"""Recordings in: format recognition, refusal of bad files, decoding, and VAD.

Test recordings are spoken by espeak-ng and encoded with PyAV itself (the same FFmpeg
that decodes them), so no binary fixtures live in the repository.
"""

from __future__ import annotations

import itertools
import wave
from pathlib import Path

import av
import numpy as np
import pytest

from yakuba.minutes import audio, vad
from yakuba.minutes.audio import AudioError

from .conftest import speak

SPOKEN = "Good morning everyone. Thank you very much for coming to the meeting today."


def encode(src: Path, dest: Path, container: str, codec: str, rate: int) -> Path:
    """``dest``: ``src`` encoded by FFmpeg as ``codec`` in ``container``.  "webm-live"
    is WebM as a browser's MediaRecorder writes it: no duration, no cues."""
    options = {"live": "1"} if container == "webm-live" else {}
    container = container.removesuffix("-live")
    with (
        av.open(str(src)) as inp,
        av.open(str(dest), "w", format=container, options=options) as out,
    ):
        stream = out.add_stream(codec, rate=rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        formats = stream.codec_context.codec.audio_formats
        assert formats is not None
        sample_format = formats[0].name
        resampler = av.AudioResampler(format=sample_format, layout="mono", rate=rate)
        frames = [f for frame in inp.decode(audio=0) for f in resampler.resample(frame)]
        for frame in frames + resampler.resample(None) + [None]:
            for packet in stream.encode(frame):
                out.mux(packet)
    return dest


def wav_shape(path: Path) -> tuple[int, int, int, int]:
    with wave.open(str(path), "rb") as wav:
        return wav.getnchannels(), wav.getsampwidth(), wav.getframerate(), wav.getnframes()


def write_pcm_wav(path: Path, pcm: bytes) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16_000)
        wav.writeframes(pcm)
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A folder of the test's own (tmp_path also holds the minutes media folder)."""
    path = tmp_path / "audio"
    path.mkdir()
    return path


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """espeak-ng's WAV (22.05 kHz mono): about 4.5 seconds."""
    return speak(SPOKEN, tmp_path_factory.mktemp("spoken") / "spoken.wav")


def spoken_ms(path: Path) -> int:
    _channels, _width, rate, frames = wav_shape(path)
    return frames * 1000 // rate


# Each saved under a misleading name: the format comes from the content.
FORMATS = [
    ("wav", None, None, 0, "recording.mp3"),
    ("mp3", "mp3", "libmp3lame", 22_050, "recording.wav"),
    ("m4a", "mp4", "aac", 22_050, "recording.opus"),
    ("opus", "ogg", "libopus", 48_000, "recording.m4a"),
    ("opus", "webm", "libopus", 48_000, "recording.bin"),
    ("opus", "webm-live", "libopus", 48_000, "recording.webm"),
]


@pytest.mark.parametrize(("expected", "container", "codec", "rate", "name"), FORMATS)
def test_it_recognises_and_decodes_each_format_by_content(
    spoken: Path,
    folder: Path,
    expected: str,
    container: str | None,
    codec: str | None,
    rate: int,
    name: str,
) -> None:
    source = folder / name
    if container is None:
        source.write_bytes(spoken.read_bytes())
    else:
        assert codec is not None
        encode(spoken, source, container, codec, rate)
    length = spoken_ms(spoken)

    probe = audio.probe(source)
    assert probe.format == expected
    assert abs(probe.duration_ms - length) < 150  # AAC and Opus add a frame of priming

    dest = folder / "decoded.wav"
    duration_ms = audio.decode_to_wav(source, dest)
    assert abs(duration_ms - length) < 150
    channels, width, sample_rate, frames = wav_shape(dest)
    assert (channels, width, sample_rate) == (1, 2, 16_000)
    assert frames * 1000 // 16_000 == duration_ms
    assert sorted(p.name for p in folder.iterdir()) == sorted([name, "decoded.wav"])


def truncated(source: Path, dest: Path) -> Path:
    data = source.read_bytes()
    dest.write_bytes(data[: len(data) // 2])
    return dest


def video_only(dest: Path) -> Path:
    with av.open(str(dest), "w", format="mp4") as out:
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        black = np.zeros((48, 64, 3), dtype=np.uint8)
        for _ in range(10):
            for packet in stream.encode(av.VideoFrame.from_ndarray(black, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return dest


def bad_file(kind: str, spoken: Path, folder: Path) -> Path:
    path = folder / f"upload-{kind}.mp3"
    if kind == "random bytes":
        path.write_bytes(np.random.default_rng(4).bytes(40_000))
    elif kind == "mp3 tag then random bytes":
        path.write_bytes(
            b"ID3\x04\x00\x00\x00\x00\x00\x00" + np.random.default_rng(5).bytes(40_000)
        )
    elif kind == "text renamed .mp3":
        path.write_text("議事録\nこれは音声ではありません。\n" * 50, encoding="utf-8")
    elif kind == "empty file":
        path.write_bytes(b"")
    elif kind == "header-only wav":
        write_pcm_wav(path, b"")
    elif kind == "video without audio":
        video_only(path)
    elif kind == "truncated wav":
        truncated(spoken, path)
    elif kind == "truncated m4a":
        truncated(encode(spoken, folder / "whole.m4a", "mp4", "aac", 22_050), path)
    return path


BAD = {
    "random bytes": "認識できない形式",
    "mp3 tag then random bytes": "壊れている",
    "text renamed .mp3": "対応している形式は WAV、MP3、M4A",
    "empty file": "0 秒",
    "header-only wav": "0 秒",
    "video without audio": "音声トラックがありません",
    "truncated wav": "途中で途切れています",
    "truncated m4a": "壊れている",
}


@pytest.mark.parametrize("kind", list(BAD))
def test_it_refuses_a_bad_file_with_a_clear_message_and_leaves_nothing(
    spoken: Path, folder: Path, kind: str
) -> None:
    path = bad_file(kind, spoken, folder)
    before = sorted(folder.iterdir())

    with pytest.raises(AudioError) as probed:
        audio.probe(path)
    assert BAD[kind] in str(probed.value)
    assert probed.value.english
    assert probed.value.english != str(probed.value)

    dest = folder / "decoded.wav"
    with pytest.raises(AudioError) as decoded:
        audio.decode_to_wav(path, dest)
    assert BAD[kind] in str(decoded.value)
    assert sorted(folder.iterdir()) == before  # no dest, no partial file


def test_it_refuses_a_file_that_breaks_off_midway_when_decoding(spoken: Path, folder: Path) -> None:
    """An MP3 cut in half still starts well (probe is quick and passes), but decoding
    finds it shorter than its header says."""
    whole = encode(spoken, folder / "whole.mp3", "mp3", "libmp3lame", 22_050)
    # Long enough that half of it is beyond the 2-second slack for estimated lengths.
    long = folder / "long.wav"
    pcm = audio.read_pcm(_decoded(whole, folder), 0, 10**9)
    write_pcm_wav(long, pcm * 3)
    cut = truncated(
        encode(long, folder / "long.mp3", "mp3", "libmp3lame", 16_000), folder / "cut.mp3"
    )
    assert audio.probe(cut).format == "mp3"
    with pytest.raises(AudioError, match="途中で途切れています") as error:
        audio.decode_to_wav(cut, folder / "cut.wav")
    assert "breaks off" in error.value.english
    assert not (folder / "cut.wav").exists()
    assert not list(folder.glob("*.part"))


def _decoded(source: Path, folder: Path) -> Path:
    dest = folder / f"{source.stem}-16k.wav"
    audio.decode_to_wav(source, dest)
    return dest


def test_it_reads_a_time_range_clipped_to_the_file(spoken: Path, folder: Path) -> None:
    wav = _decoded(spoken, folder)
    whole = audio.read_pcm(wav, 0, 10**9)
    assert len(whole) == wav_shape(wav)[3] * 2
    assert audio.read_pcm(wav, 1000, 1500) == whole[32_000:48_000]
    assert audio.read_pcm(wav, -500, 250) == whole[:8_000]
    assert audio.read_pcm(wav, 10**8, 10**9) == b""


def test_vad_finds_two_utterances_around_two_seconds_of_silence(folder: Path) -> None:
    first = audio.read_pcm(
        _decoded(speak("Good morning everyone", folder / "a.wav"), folder), 0, 10**9
    )
    second = audio.read_pcm(_decoded(speak("See you tomorrow", folder / "b.wav"), folder), 0, 10**9)
    silence = np.zeros(32_000, dtype="<i2").tobytes()  # two seconds
    wav = write_pcm_wav(folder / "two.wav", first + silence + second)
    first_ms = len(first) // 32
    second_starts = first_ms + 2000

    regions = vad.speech_regions(wav, aggressiveness=2, max_segment_ms=20_000)

    assert len(regions) == 2
    one, two = regions
    assert one.start_ms < 400
    assert first_ms - 800 < one.end_ms <= first_ms + 200
    assert second_starts - 300 <= two.start_ms < second_starts + 400
    assert two.end_ms <= len(first + silence + second) // 32
    assert vad.speech_regions(wav, aggressiveness=2, max_segment_ms=20_000) == regions


def test_vad_cuts_long_speech_under_the_limit_at_quiet_points(spoken: Path, folder: Path) -> None:
    pcm = audio.read_pcm(_decoded(spoken, folder), 0, 10**9)
    wav = write_pcm_wav(folder / "long.wav", pcm)
    whole = vad.speech_regions(wav, aggressiveness=2, max_segment_ms=20_000)
    assert any(region.duration_ms > 1_500 for region in whole)

    pieces = vad.speech_regions(wav, aggressiveness=2, max_segment_ms=1_500)

    assert len(pieces) > len(whole)
    assert all(p.duration_ms <= 1_500 for p in pieces)
    assert all(a.end_ms <= b.start_ms for a, b in itertools.pairwise(pieces))
    assert pieces[0].start_ms == whole[0].start_ms
    assert pieces[-1].end_ms == whole[-1].end_ms


def test_vad_finds_nothing_in_silence(folder: Path) -> None:
    wav = write_pcm_wav(folder / "silence.wav", bytes(16_000 * 2 * 3))
    assert vad.speech_regions(wav) == []
