"""Uploaded recordings: recognise, check and decode them with FFmpeg (through PyAV).

Accepted: WAV (PCM), MP3, M4A (AAC in MP4) and Opus (in Ogg or WebM).  The format is
read from the first bytes of the file, never from its name, and FFmpeg is told which
demuxer to use: letting it guess would also let it open playlists (HLS, concat) that
point at other files or URLs.

``decode_to_wav`` turns a recording into the one form the rest of the pipeline reads:
16 kHz mono signed 16-bit little-endian WAV.  It streams (memory stays flat for a
3-hour meeting) and writes the WAV next to its destination first, so a failure leaves
no partial file behind.
"""

from __future__ import annotations

import contextlib
import os
import struct
import tempfile
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import av.container
from django.utils.translation import gettext as _

from yakuba.minutes.asr.base import SAMPLE_RATE, SAMPLE_WIDTH

SUPPORTED_FORMATS = ("wav", "mp3", "m4a", "opus")

# Only local files: a container must never make FFmpeg open another file or a URL.
_OPEN_OPTIONS = {"protocol_whitelist": "file"}
# How much audio ``probe`` decodes to prove that the stream decodes at all.
_PROBE_PACKETS = 64
# A decoded length this much shorter than the container declares means the file was cut
# short (an interrupted copy or upload).  Generous: some MP3s only estimate their length.
_TRUNCATION_SLACK_MS = 2_000
_TRUNCATION_SLACK_SHARE = 0.10
# Damaged packets skipped before the whole file counts as corrupt.
_MAX_BAD_SHARE = 0.01


class AudioError(ValueError):
    """The recording cannot be used.  The message says why and what to do, in Japanese;
    ``english`` says it in English for logs and the API."""

    def __init__(self, message: str, english: str) -> None:
        super().__init__(message)
        self.english = english


@dataclass(frozen=True)
class Probe:
    format: str  # one of SUPPORTED_FORMATS
    duration_ms: int


@dataclass(frozen=True)
class _Kind:
    format: str  # ours: one of SUPPORTED_FORMATS
    demuxer: str  # FFmpeg's
    codecs: tuple[str, ...]  # decoder names accepted inside it (prefixes end in "_")


_WAV = _Kind("wav", "wav", ("pcm_",))
_MP3 = _Kind("mp3", "mp3", ("mp3",))
_M4A = _Kind("m4a", "mp4", ("aac",))
_OGG_OPUS = _Kind("opus", "ogg", ("opus",))
_WEBM_OPUS = _Kind("opus", "matroska", ("opus",))


def _accepted() -> str:
    return _("対応している形式は WAV、MP3、M4A (AAC)、Opus (Ogg または WebM) です。")


_ACCEPTED_EN = "Accepted formats: WAV, MP3, M4A (AAC), Opus (Ogg or WebM)."


def _unsupported() -> AudioError:
    return AudioError(
        _("音声ファイルとして認識できない形式です。") + _accepted(),
        "Not a recognised audio format. " + _ACCEPTED_EN,
    )


def _corrupt(detail: str) -> AudioError:
    return AudioError(
        _("音声ファイルが壊れているため読み取れません。元の録音から保存し直してください。"),
        f"The audio file is corrupt and cannot be decoded ({detail}).",
    )


def _reason(exc: Exception) -> str:
    """FFmpeg's reason without the file name (a server path is nobody's business)."""
    return str(getattr(exc, "strerror", None) or type(exc).__name__)


def _empty() -> AudioError:
    return AudioError(
        _("音声ファイルに音声が入っていません (長さが 0 秒です)。"),
        "The audio file holds no audio (zero duration).",
    )


def _truncated(decoded_ms: int, declared_ms: int) -> AudioError:
    return AudioError(
        _("音声ファイルが途中で途切れています。元の録音から保存し直してください。"),
        f"The audio file breaks off after {decoded_ms} ms of {declared_ms} ms declared.",
    )


def _check_complete(decoded_ms: int, declared_ms: int | None) -> None:
    if declared_ms is None:
        return
    slack = max(_TRUNCATION_SLACK_MS, int(declared_ms * _TRUNCATION_SLACK_SHARE))
    if decoded_ms < declared_ms - slack:
        raise _truncated(decoded_ms, declared_ms)


def _wav_lengths(path: Path) -> tuple[int, int] | None:
    """(declared, present) length in ms of a WAV's data chunk, from its header.  FFmpeg
    quietly clips the declared size to the file, so a cut-off WAV looks whole to it.
    None when the header does not say (streaming writers leave 0 or 0xFFFFFFFF)."""
    with path.open("rb") as file:
        size = os.fstat(file.fileno()).st_size
        file.seek(12)
        byte_rate = 0
        while True:
            header = file.read(8)
            if len(header) < 8:
                return None
            chunk, length = struct.unpack("<4sI", header)
            if chunk == b"fmt " and length >= 12:
                byte_rate = struct.unpack("<8xI", file.read(12))[0]
                file.seek(length - 12 + (length & 1), os.SEEK_CUR)
            elif chunk == b"data":
                if not byte_rate or length in (0, 0xFFFFFFFF):
                    return None
                present = max(0, size - file.tell())
                return length * 1000 // byte_rate, min(length, present) * 1000 // byte_rate
            else:
                file.seek(length + (length & 1), os.SEEK_CUR)


def _sniff(head: bytes) -> _Kind:
    """The container, from the file's first bytes (its magic numbers)."""
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return _WAV
    if head[4:8] == b"ftyp":
        return _M4A
    if head[:4] == b"OggS":
        return _OGG_OPUS
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: Matroska / WebM
        return _WEBM_OPUS
    if head[:3] == b"ID3":
        return _MP3
    # An MPEG audio frame header: 11 sync bits, then a layer other than 00 (00 is AAC ADTS).
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return _MP3
    raise _unsupported()


@contextlib.contextmanager
def _open(path: Path) -> Iterator[tuple[_Kind, av.container.InputContainer, Any]]:
    """The container of ``path`` and its first audio stream; AudioError when unusable."""
    try:
        with path.open("rb") as file:
            head = file.read(16)
    except OSError as exc:
        raise AudioError(
            _("音声ファイルを読み取れません。"), f"Cannot read the audio file: {exc.strerror}"
        ) from exc
    if not head:
        raise _empty()
    kind = _sniff(head)
    try:
        container = av.open(str(path), mode="r", format=kind.demuxer, options=_OPEN_OPTIONS)
    except (av.FFmpegError, UnicodeDecodeError) as exc:
        raise _corrupt(f"{kind.demuxer}: {_reason(exc)}") from exc
    with container:
        if not container.streams.audio:
            raise AudioError(
                _("ファイルに音声トラックがありません。") + _accepted(),
                "The file has no audio stream. " + _ACCEPTED_EN,
            )
        stream = container.streams.audio[0]
        codec = stream.codec_context.name
        if not any(codec.startswith(name) for name in kind.codecs):
            raise AudioError(
                _("この音声の符号化方式 (%(codec)s) には対応していません。") % {"codec": codec}
                + _accepted(),
                f"Unsupported audio codec {codec} in {kind.demuxer}. " + _ACCEPTED_EN,
            )
        yield kind, container, stream


def _declared_ms(container: av.container.InputContainer, stream: Any) -> int | None:
    """The length the container declares (header, index or last page), if any."""
    if container.duration is not None and container.duration > 0:
        return int(container.duration // 1000)  # AV_TIME_BASE is microseconds
    if stream.duration is not None and stream.time_base is not None and stream.duration > 0:
        return int(stream.duration * stream.time_base * 1000)
    return None


def _demuxed_ms(container: av.container.InputContainer, stream: Any) -> int:
    """The length from the packets' time stamps, without decoding (WebM written by a
    browser declares none).  Reads the file once, which is fast next to decoding."""
    end = 0.0
    for packet in container.demux(stream):
        if packet.pts is None or packet.time_base is None:
            continue
        end = max(end, float((packet.pts + (packet.duration or 0)) * packet.time_base))
    return int(end * 1000)


def probe(path: Path | str) -> Probe:
    """Recognise ``path`` and prove that its audio decodes: opens it, reads its stream
    information and decodes its first packets.  Raises AudioError: unsupported format,
    corrupt, no audio stream, zero duration."""
    path = Path(path)
    with _open(path) as (kind, container, stream):
        declared = _declared_ms(container, stream)
        try:
            packets = samples = 0
            for packets, packet in enumerate(container.demux(stream), start=1):
                samples += sum(frame.samples for frame in packet.decode())
                if samples or packets >= _PROBE_PACKETS:
                    break
            if not samples:
                raise _empty() if packets <= 1 and not declared else _corrupt("nothing decodes")
        except av.FFmpegError as exc:
            raise _corrupt(_reason(exc)) from exc
    if declared is None:
        # Read again from the start (seeking a WebM without cues is not reliable).
        with _open(path) as (_kind, container, stream):
            try:
                declared = _demuxed_ms(container, stream)
            except av.FFmpegError as exc:
                raise _corrupt(_reason(exc)) from exc
    if kind is _WAV and (lengths := _wav_lengths(path)) is not None:
        _check_complete(lengths[1], lengths[0])
    if declared <= 0:
        raise _empty()
    return Probe(format=kind.format, duration_ms=declared)


def decode_to_wav(src: Path | str, dest: Path | str) -> int:
    """Decode ``src`` into ``dest``, a 16 kHz mono s16le WAV; returns its duration in ms.

    Streams frame by frame.  Raises AudioError (and leaves no ``dest``) when the file is
    not supported, is corrupt, breaks midway, or holds no audio.
    """
    dest = Path(dest)
    fd, temp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    os.close(fd)
    temp = Path(temp_name)
    try:
        samples = _decode_into(Path(src), temp)
        os.replace(temp, dest)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return samples * 1000 // SAMPLE_RATE


def _decode_into(src: Path, temp: Path) -> int:
    """Write the audio of ``src`` into the WAV ``temp``; the number of samples."""
    samples = 0
    with _open(src) as (kind, container, stream), wave.open(str(temp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(SAMPLE_WIDTH)
        out.setframerate(SAMPLE_RATE)
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        declared = _declared_ms(container, stream)
        packets = bad = 0
        try:
            for packet in container.demux(stream):
                packets += 1
                try:
                    frames = packet.decode()
                except av.InvalidDataError:
                    # Recorders leave the odd damaged frame; FFmpeg's own tools skip it.
                    bad += 1
                    continue
                for frame in frames:
                    # One continuous stream: a recorder's late start or jumpy time
                    # stamps must not make the resampler pad or drop audio.
                    frame.pts = None
                    for chunk in resampler.resample(frame):
                        samples += _write(out, chunk)
            for chunk in resampler.resample(None):
                samples += _write(out, chunk)
        except av.FFmpegError as exc:
            raise _corrupt(_reason(exc)) from exc
        if bad > _MAX_BAD_SHARE * packets:
            raise _corrupt(f"{bad} of {packets} packets do not decode")
    if samples == 0:
        raise _empty()
    if kind is _WAV and (lengths := _wav_lengths(src)) is not None:
        declared = lengths[0]
    _check_complete(samples * 1000 // SAMPLE_RATE, declared)
    return samples


def _write(out: wave.Wave_write, frame: av.AudioFrame) -> int:
    pcm = frame.to_ndarray()  # packed s16 mono: shape (1, samples)
    out.writeframesraw(pcm.astype("<i2", copy=False).tobytes())
    return int(frame.samples)


def read_pcm(wav_path: Path | str, start_ms: int, end_ms: int) -> bytes:
    """The PCM (16 kHz mono s16le) of ``wav_path`` from ``start_ms`` to ``end_ms``,
    clipped to the file."""
    with wave.open(str(wav_path), "rb") as wav:
        check_wav(wav)
        total = wav.getnframes()
        first = min(total, max(0, start_ms * SAMPLE_RATE // 1000))
        last = min(total, max(first, end_ms * SAMPLE_RATE // 1000))
        wav.setpos(first)
        return wav.readframes(last - first)


def check_wav(wav: wave.Wave_read) -> None:
    """The pipeline's WAVs are all 16 kHz mono s16 (``decode_to_wav`` writes them)."""
    shape = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
    if shape != (1, SAMPLE_WIDTH, SAMPLE_RATE):
        raise AudioError(
            _("内部の音声ファイルの形式が違います。"),
            f"Expected a 16 kHz mono 16-bit WAV, got channels/width/rate {shape}.",
        )
