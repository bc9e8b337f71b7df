"""`make bench-asr`: accuracy (WER/CER) and speed (real-time factor) of the speech engines.

For every engine asked for (by default every engine that ``yakuba asr check`` reports
usable and whose language fits the set), over a set of audio files with reference texts:

1. Each file is decoded once by the pipeline's own decoder
   (``yakuba.minutes.audio.decode_to_wav``, 16 kHz mono s16le WAV).
2. The engine is loaded once (``load_s``), then every file is recognised through the
   engine interface (``Engine.recognise``): the whole file in one call, or with
   ``--vad`` each speech region that the pipeline's VAD finds, the texts joined.
   ``engine_s`` is ``time.perf_counter()`` around the ``recognise`` calls only;
   ``rtf`` = ``engine_s`` ÷ ``audio_s`` (the audio handed to the engine);
   ``rtf_cpu`` is the process's CPU time over the same calls ÷ ``audio_s``, which a
   busy machine inflates much less (for a one-thread engine on an idle core the two
   are equal).  With ``--threads 1`` (the default) the whole process is pinned to one
   CPU (``os.sched_setaffinity``): the real-time factor on one core.
3. Accuracy over the whole set (total edits ÷ total reference units, the corpus rate):
   ``wer`` for languages written with spaces (lower-cased, NFKC, punctuation removed,
   words), ``cer`` for Japanese and Chinese (NFKC, katakana folded to hiragana, spaces
   and punctuation removed, characters).  Edit distance is a plain Levenshtein DP.
4. The pipeline: all the files, joined into one recording with a second of silence
   between them, are uploaded to a meeting in a throw-away SQLite database (a temporary
   folder, migrated at start) and transcribed by the real job ``minutes.transcribe``,
   claimed and run by the worker's own functions (``claim_next``/``run_job``).
   ``pipeline_overhead_pct`` = (job wall time − model load − the job's own engine
   time, ``TranscriptionJob.engine_seconds``) ÷ that engine time × 100: decoding, VAD,
   reading PCM, saving each segment with the job's progress, events, dictionary
   correction, the worker's claim.  ``--no-pipeline`` skips it.

Sets (``--dataset``):
- ``english`` (the default): bench/asr_data/english.tsv, 20 meeting-like sentences,
  spoken by espeak-ng (voice en-us, 140 words a minute) into var/bench-asr/english/
  (made again when a sentence, the voice or espeak-ng's version changes).
- ``japanese``: bench/asr_data/japanese.tsv, 10 sentences in hiragana (espeak-ng reads
  Japanese kana only), scored by CER against the kana: an engine that writes kanji
  scores far worse here than it really is.
- a folder of your own: either a manifest ``manifest.tsv`` (or ``--dataset FILE.tsv``)
  with one ``file<TAB>reference`` line per recording (paths relative to the manifest;
  lines starting with ``#`` are comments), or pairs ``NAME.wav`` + ``NAME.txt`` (also
  ``.mp3``, ``.m4a``, ``.opus``).  The language is ``--language`` (default
  YAKUBA_ASR_LANGUAGE).

For a machine without Yakuba (a GPU server): ``--export-wav DIR`` writes the set as
16 kHz mono WAVs with a ``manifest.tsv`` and stops; ``--score FILE`` reads the last JSON
line of FILE, whose ``hypotheses`` list holds ``file``, ``reference`` and
``hypothesis``, and prints it again with ``wer`` or ``cer`` added by the rules above.

A human-readable table goes to stderr; the last line of stdout is one JSON object
``{"engines": [...], "skipped": [...], "cpu": ..., "harness_cpu_s": ...}``.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
import wave
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "bench" / "asr_data"
CACHE_DIR = ROOT / "var" / "bench-asr"
AUDIO_SUFFIXES = (".wav", ".mp3", ".m4a", ".opus")
# Languages written without spaces between words: scored by characters.
CER_LANGUAGES = frozenset({"ja", "zh", "yue", "ko", "th"})
TARGET_RTF = {"pocketsphinx": 0.5}
TARGET_OVERHEAD_PCT = 5.0
# Silence between the files joined into the pipeline's one recording: enough for the
# VAD to close a region (its ring is 300 ms, its gap bridging 300 ms).
JOIN_SILENCE_MS = 1_000


@dataclass(frozen=True)
class ShippedSet:
    language: str
    voice: str
    words_per_minute: int


SHIPPED = {
    "english": ShippedSet("en", "en-us", 140),
    "japanese": ShippedSet("ja", "ja", 140),
}
ENV_OPTIONS = {
    "faster_whisper_model": "YAKUBA_FASTER_WHISPER_MODEL_DIR",
    "faster_whisper_device": "YAKUBA_FASTER_WHISPER_DEVICE",
    "faster_whisper_compute_type": "YAKUBA_FASTER_WHISPER_COMPUTE_TYPE",
    "whisper_cpp_model": "YAKUBA_WHISPER_CPP_MODEL",
    "vosk_model": "YAKUBA_VOSK_MODEL_DIR",
}


@dataclass(frozen=True)
class Item:
    name: str
    audio: Path
    reference: str


@dataclass
class Dataset:
    name: str
    language: str
    items: list[Item]


@dataclass
class Decoded:
    item: Item
    wav: Path
    duration_ms: int


@dataclass
class EngineRun:
    engine: str
    model: str = ""
    language: str = ""
    device: str = "cpu"
    files: int = 0
    audio_s: float = 0.0
    engine_s: float = 0.0
    engine_cpu_s: float = 0.0
    load_s: float = 0.0
    edits: int = 0
    reference_units: int = 0
    errors: list[str] = field(default_factory=list)
    texts: list[tuple[str, str, str]] = field(default_factory=list)  # name, ref, hyp


class UsageError(Exception):
    pass


# --- scoring ---------------------------------------------------------------------------


def uses_cer(language: str) -> bool:
    return language.split("-")[0].lower() in CER_LANGUAGES


def _is_punctuation(char: str) -> bool:
    # P*: punctuation (。、「」!?), S*: symbols (♪, ～, $).
    return unicodedata.category(char)[0] in "PS"


def words(text: str) -> list[str]:
    """WER units: NFKC, lower case, apostrophes dropped (don't = dont), other
    punctuation read as a space."""
    text = unicodedata.normalize("NFKC", text).lower().replace("'", "").replace("’", "")
    return "".join(" " if _is_punctuation(char) else char for char in text).split()


def _hiragana(char: str) -> str:
    # Katakana ァ..ヶ sit 0x60 above hiragana ぁ..ゖ; an engine writing カイギ for かいぎ
    # heard the same sounds.
    return chr(ord(char) - 0x60) if "ァ" <= char <= "ヶ" else char


def characters(text: str) -> list[str]:
    """CER units: NFKC, katakana as hiragana, no spaces, punctuation or symbols."""
    text = unicodedata.normalize("NFKC", text)
    return [
        _hiragana(char)
        for char in text
        if not char.isspace() and not _is_punctuation(char) and unicodedata.category(char)[0] != "C"
    ]


def edit_distance(reference: Sequence[str], hypothesis: Sequence[str]) -> int:
    """Levenshtein distance (substitutions, deletions, insertions all cost 1)."""
    previous = list(range(len(hypothesis) + 1))
    for row, ref_unit in enumerate(reference, start=1):
        current = [row]
        for column, hyp_unit in enumerate(hypothesis, start=1):
            current.append(
                min(
                    previous[column] + 1,
                    current[column - 1] + 1,
                    previous[column - 1] + (ref_unit != hyp_unit),
                )
            )
        previous = current
    return previous[-1]


def score(reference: str, hypothesis: str, *, cer: bool) -> tuple[int, int]:
    """(edits, reference units) of one file."""
    units = characters if cer else words
    ref = units(reference)
    return edit_distance(ref, units(hypothesis)), len(ref)


# --- data sets --------------------------------------------------------------------------


def _read_tsv(path: Path) -> list[tuple[str, str]]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        name, tab, text = line.partition("\t")
        if not tab or not name.strip() or not text.strip():
            raise UsageError(f"{path}:{number}: expected 'file<TAB>reference', got {line!r}")
        rows.append((name.strip(), text.strip()))
    if not rows:
        raise UsageError(f"{path}: no entries")
    return rows


def _espeak_version(espeak: str) -> str:
    done = subprocess.run([espeak, "--version"], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def shipped_dataset(name: str) -> Dataset:
    """A shipped set, its audio spoken by espeak-ng into the cache when missing or stale."""
    spec = SHIPPED[name]
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise UsageError("espeak-ng is missing (apt-get install espeak-ng): it speaks the set")
    version = _espeak_version(espeak)
    folder = CACHE_DIR / name
    folder.mkdir(parents=True, exist_ok=True)
    items = []
    for file_name, text in _read_tsv(DATA_DIR / f"{name}.tsv"):
        wav = folder / f"{file_name}.wav"
        stamp = folder / f"{file_name}.key"
        key = hashlib.sha256(
            f"{version}\n{spec.voice}\n{spec.words_per_minute}\n{text}".encode()
        ).hexdigest()
        if not wav.exists() or not stamp.exists() or stamp.read_text() != key:
            partial = folder / f".{file_name}.wav.part"
            command = [espeak, "-v", spec.voice, "-s", str(spec.words_per_minute)]
            subprocess.run([*command, "-w", str(partial), text], check=True, capture_output=True)
            partial.replace(wav)
            stamp.write_text(key)
        items.append(Item(file_name, wav, text))
    return Dataset(name, spec.language, items)


def folder_dataset(path: Path, language: str) -> Dataset:
    """A set of one's own: a manifest TSV, or NAME.wav + NAME.txt pairs."""
    manifest = path if path.is_file() else path / "manifest.tsv"
    if manifest.is_file():
        items = []
        for file_name, text in _read_tsv(manifest):
            audio = (manifest.parent / file_name).resolve()
            if not audio.is_file():
                raise UsageError(f"{manifest}: no audio file {audio}")
            items.append(Item(file_name, audio, text))
        return Dataset(str(path), language, items)
    if not path.is_dir():
        raise UsageError(f"--dataset {path}: not english, japanese, a folder or a .tsv file")
    items = []
    for audio in sorted(path.iterdir()):
        text_file = audio.with_suffix(".txt")
        if audio.suffix.lower() in AUDIO_SUFFIXES and text_file.is_file():
            items.append(Item(audio.name, audio, text_file.read_text(encoding="utf-8").strip()))
    if not items:
        raise UsageError(
            f"{path}: no manifest.tsv and no NAME.wav/.mp3/.m4a/.opus with a NAME.txt beside it"
        )
    return Dataset(str(path), language, items)


def decode_all(dataset: Dataset, scratch: Path) -> list[Decoded]:
    from yakuba.minutes import audio

    folder = scratch / "decoded"
    folder.mkdir()
    decoded = []
    for index, item in enumerate(dataset.items):
        wav = folder / f"{index:05d}.wav"
        try:
            duration_ms = audio.decode_to_wav(item.audio, wav)
        except audio.AudioError as exc:
            raise UsageError(f"{item.audio}: {exc.english}") from exc
        decoded.append(Decoded(item, wav, duration_ms))
    return decoded


# --- engines --------------------------------------------------------------------------


def _language_fits(engine_language: str, language: str) -> bool:
    """Whether an engine whose status names ``engine_language`` can hear ``language``."""
    if not engine_language or engine_language in ("auto", "multi", "multilingual"):
        return True
    base = language.split("-")[0].lower()
    return any(part.strip().split("-")[0].lower() == base for part in engine_language.split(","))


def choose_engines(
    asked: list[str] | None, language: str
) -> tuple[list[str], list[dict[str, str]]]:
    """(engines to run, skipped ones with the reason)."""
    from yakuba.minutes import asr

    run, skipped = [], []
    for status in asr.all_statuses():
        if asked is not None and status.name not in asked:
            continue
        if not status.usable:
            skipped.append({"engine": status.name, "reason": status.detail})
        elif asked is None and not _language_fits(status.language, language):
            skipped.append(
                {"engine": status.name, "reason": f"speaks {status.language}, not {language}"}
            )
        else:
            run.append(status.name)
    unknown = sorted(set(asked or ()) - set(asr.ENGINE_NAMES))
    if unknown:
        raise UsageError(f"no engine {', '.join(unknown)}; choose from {asr.ENGINE_NAMES}")
    return run, skipped


def _device(engine: str) -> str:
    if engine != "faster-whisper":
        return "cpu"
    from django.conf import settings

    device = str(settings.MINUTES_FASTER_WHISPER_DEVICE)
    if device == "auto":
        with contextlib.suppress(Exception):
            import ctranslate2

            return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    return device


def _pieces(decoded: Decoded, *, use_vad: bool) -> list[bytes]:
    from yakuba.minutes import audio, vad

    if not use_vad:
        return [audio.read_pcm(decoded.wav, 0, decoded.duration_ms)]
    return [
        audio.read_pcm(decoded.wav, region.start_ms, region.end_ms)
        for region in vad.speech_regions(decoded.wav)
    ]


def run_engine(name: str, decoded: list[Decoded], *, cer: bool, use_vad: bool) -> EngineRun:
    from yakuba.minutes import asr
    from yakuba.minutes.asr.base import BYTES_PER_SECOND

    result = EngineRun(engine=name, device=_device(name))
    began = time.perf_counter()
    try:
        engine = asr.load_engine(name)
    except asr.EngineUnavailable as exc:
        result.errors.append(f"load: {exc.english}")
        return result
    result.load_s = time.perf_counter() - began
    result.model, result.language = engine.model_label, engine.language
    for entry in decoded:
        pieces = _pieces(entry, use_vad=use_vad)
        texts = []
        began, cpu_began = time.perf_counter(), time.process_time()
        try:
            for pcm in pieces:
                texts.append(engine.recognise(pcm).text.strip())
        except Exception as exc:
            # One bad file must not cost the figures of the others; it is reported.
            result.errors.append(f"{entry.item.name}: {type(exc).__name__}: {exc}")
            continue
        result.engine_s += time.perf_counter() - began
        result.engine_cpu_s += time.process_time() - cpu_began
        result.audio_s += sum(len(pcm) for pcm in pieces) / BYTES_PER_SECOND
        hypothesis = " ".join(text for text in texts if text)
        edits, units = score(entry.item.reference, hypothesis, cer=cer)
        result.edits += edits
        result.reference_units += units
        result.files += 1
        result.texts.append((entry.item.name, entry.item.reference, hypothesis))
    del engine  # a model can hold gigabytes: free it before the pipeline loads its own
    return result


# --- the pipeline ---------------------------------------------------------------------


def join_recording(decoded: list[Decoded], dest: Path) -> None:
    """One WAV of every file, in order, a second of silence after each: a 'meeting'."""
    from yakuba.minutes.asr.base import BYTES_PER_SECOND, SAMPLE_RATE, SAMPLE_WIDTH

    silence = b"\0" * (BYTES_PER_SECOND * JOIN_SILENCE_MS // 1000)
    with wave.open(str(dest), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(SAMPLE_WIDTH)
        out.setframerate(SAMPLE_RATE)
        for entry in decoded:
            with wave.open(str(entry.wav), "rb") as wav:
                out.writeframes(wav.readframes(wav.getnframes()))
            out.writeframes(silence)


@dataclass
class PipelineSetup:
    user: Any
    recording_path: Path
    meetings: int = 0


def setup_pipeline(scratch: Path, decoded: list[Decoded]) -> PipelineSetup:
    """Migrate the scratch database and make the organiser (through the real actions)."""
    from django.core.management import call_command

    from yakuba.audit.record import Actor
    from yakuba.directory.actions.staff import do_create_department, do_create_staff

    call_command("migrate", verbosity=0)
    admin = Actor.system("bench-asr")
    department = do_create_department(code="110", name="総務課", level="ka", acting_user=admin)
    staff = do_create_staff(
        employee_number="50001",
        family_name="議事",
        given_name="太郎",
        family_kana="ぎじ",
        given_kana="たろう",
        department=department,
        acting_user=admin,
    )
    recording = scratch / "meeting.wav"
    join_recording(decoded, recording)
    return PipelineSetup(staff.user, recording)


@contextlib.contextmanager
def _timed_loads(spent: list[float]) -> Iterator[None]:
    """Times every ``asr.load_engine`` call (the job loads its engine through it)."""
    from yakuba.minutes import asr

    original: Callable[..., Any] = asr.load_engine

    def timed(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            spent.append(time.perf_counter() - began)

    # Instrumentation of the benchmark: the job calls asr.load_engine by attribute.
    asr.load_engine = timed
    try:
        yield
    finally:
        asr.load_engine = original


def run_pipeline(name: str, setup: PipelineSetup) -> dict[str, Any]:
    """Transcribe the joined recording with engine ``name`` through the worker's job."""
    from django.core.files.uploadedfile import UploadedFile

    from yakuba.lib import clock
    from yakuba.minutes.actions.meetings import do_create_meeting
    from yakuba.minutes.actions.recordings import do_upload_recording
    from yakuba.minutes.actions.transcription import do_request_transcription
    from yakuba.minutes.models import Segment, TranscriptionJob
    from yakuba.tasks.worker import claim_next, run_job

    setup.meetings += 1
    starts_at = clock.now().replace(microsecond=0)
    meeting = do_create_meeting(
        user=setup.user,
        title=f"ASR benchmark {setup.meetings} ({name})",
        starts_at=starts_at,
        ends_at=starts_at + dt.timedelta(hours=1),
        attendees=[setup.user],
    )
    with setup.recording_path.open("rb") as file:
        upload = UploadedFile(file, name="meeting.wav", size=setup.recording_path.stat().st_size)
        do_upload_recording(meeting, upload, user=setup.user)
    job = do_request_transcription(meeting, user=setup.user, engine=name)
    loads: list[float] = []
    began = time.perf_counter()
    with _timed_loads(loads):
        while (queued := claim_next("bench-asr")) is not None:
            run_job(queued)
    wall_s = time.perf_counter() - began
    job = TranscriptionJob.objects.get(pk=job.pk)
    engine_s = job.engine_seconds
    load_s = sum(loads)
    result: dict[str, Any] = {
        "status": job.status,
        "wall_s": round(wall_s, 3),
        "engine_s": round(engine_s, 3),
        "load_s": round(load_s, 3),
        # The job's own record of its run (started_at → finished_at), a cross-check of
        # wall_s that leaves out the worker's claim.
        "job_span_s": (
            round((job.finished_at - job.started_at).total_seconds(), 3)
            if job.started_at and job.finished_at
            else None
        ),
        "segments": Segment.objects.filter(job=job).count(),
        "speech_s": round(job.audio_ms_done / 1000, 2),
    }
    if job.status != TranscriptionJob.Status.DONE:
        result["error"] = job.error
    elif engine_s > 0:
        result["overhead_pct"] = round((wall_s - load_s - engine_s) / engine_s * 100, 2)
        result["rtf"] = round(engine_s / (job.audio_ms_done / 1000), 4)
    return result


# --- reporting -------------------------------------------------------------------------


def cpu_label() -> str:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model or 'unknown CPU'}, {os.cpu_count()} cores"


def harness_cpu_s() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def engine_json(
    run: EngineRun, pipeline: dict[str, Any] | None, *, cer: bool, threads: int, unit: str
) -> dict[str, Any]:
    metric = "cer" if cer else "wer"
    row: dict[str, Any] = {
        "engine": run.engine,
        "model": run.model,
        "language": run.language,
        "device": run.device,
        "files": run.files,
        "audio_s": round(run.audio_s, 2),
        "engine_s": round(run.engine_s, 3),
        "rtf": round(run.engine_s / run.audio_s, 4) if run.audio_s else None,
        # CPU seconds (all threads) per audio second: what the engine costs, whatever
        # else the machine was doing; equals rtf on an idle core with one thread.
        "rtf_cpu": round(run.engine_cpu_s / run.audio_s, 4) if run.audio_s else None,
        metric: round(run.edits / run.reference_units, 4) if run.reference_units else None,
        "pipeline_overhead_pct": (pipeline or {}).get("overhead_pct"),
        "load_s": round(run.load_s, 3),
        "threads": threads,
        "unit": unit,
    }
    if pipeline is not None:
        row["pipeline"] = pipeline
    if run.errors:
        row["errors"] = run.errors
    return row


def print_table(rows: list[dict[str, Any]], skipped: list[dict[str, str]], out: Any) -> None:
    header = (
        f"{'engine':<15}{'device':<7}{'files':>6}{'audio s':>9}{'rtf':>8}{'cpu rtf':>9}"
        f"{'wer/cer':>9}{'load s':>8}{'overhead %':>12}  model"
    )
    print(header, file=out)
    print("-" * len(header), file=out)
    for row in rows:
        rate = row.get("wer", row.get("cer"))
        metric = "wer" if "wer" in row else "cer"
        overhead = row["pipeline_overhead_pct"]
        print(
            f"{row['engine']:<15}{row['device']:<7}{row['files']:>6}{row['audio_s']:>9.1f}"
            f"{_fmt(row['rtf'], 3):>8}{_fmt(row['rtf_cpu'], 3):>9}"
            f"{_fmt(rate, 3) + ' ' + metric[0]:>9}"
            f"{row['load_s']:>8.2f}{_fmt(overhead, 1):>12}  {row['model']}",
            file=out,
        )
        target = TARGET_RTF.get(row["engine"])
        if target is not None and row["rtf"] is not None and row["rtf"] > target:
            print(f"  rtf above the target {target}", file=out)
        if overhead is not None and overhead > TARGET_OVERHEAD_PCT:
            print(f"  pipeline overhead above the target {TARGET_OVERHEAD_PCT} %", file=out)
        pipeline = row.get("pipeline")
        if pipeline is not None:
            print(f"  pipeline: {json.dumps(pipeline, ensure_ascii=False)}", file=out)
        for error in row.get("errors", []):
            print(f"  error: {error}", file=out)
    for entry in skipped:
        print(f"{entry['engine']:<15}skipped: {entry['reason']}", file=out)


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_texts(run: EngineRun, out: Any) -> None:
    for name, reference, hypothesis in run.texts:
        print(f"  [{run.engine}] {name}\n    ref: {reference}\n    hyp: {hypothesis}", file=out)


# --- sets for, and results from, machines without Yakuba ------------------------------


def export_wav(decoded: list[Decoded], folder: Path) -> dict[str, Any]:
    """The decoded set as ``folder``/NNNNN.wav plus ``manifest.tsv`` (a set this harness
    reads back with ``--dataset folder``)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for index, entry in enumerate(decoded):
        name = f"{index:05d}.wav"
        shutil.copyfile(entry.wav, folder / name)
        # A reference is one line: tabs and line breaks would break the manifest.
        lines.append(f"{name}\t{' '.join(entry.item.reference.split())}")
    (folder / "manifest.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {
        "exported": str(folder),
        "files": len(decoded),
        "audio_s": round(sum(entry.duration_ms for entry in decoded) / 1000, 2),
    }


def score_file(path: Path, language: str) -> dict[str, Any]:
    """The last JSON line of ``path`` with the corpus WER or CER of its hypotheses."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    try:
        result: dict[str, Any] = json.loads(lines[-1])
        hypotheses = result["hypotheses"]
    except (IndexError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"{path}: no JSON line with 'hypotheses' at the end") from exc
    cer = uses_cer(language)
    edits = units = 0
    for item in hypotheses:
        item_edits, item_units = score(item["reference"], item["hypothesis"], cer=cer)
        edits, units = edits + item_edits, units + item_units
    result["language"] = language
    result["cer" if cer else "wer"] = round(edits / units, 4) if units else None
    return result


# --- main -------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--dataset",
        default="english",
        help="english (default), japanese, a folder (manifest.tsv or NAME.wav + NAME.txt) "
        "or a manifest .tsv file",
    )
    parser.add_argument(
        "--engines",
        help="comma-separated engine names (default: every usable engine that speaks the "
        "set's language)",
    )
    parser.add_argument(
        "--language",
        help="the set's language (default: en/ja for the shipped sets, else "
        "YAKUBA_ASR_LANGUAGE); also what the Whisper engines are told",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads per engine (default 1: the process is pinned to one CPU)",
    )
    parser.add_argument("--faster-whisper-model", metavar="DIR")
    parser.add_argument("--faster-whisper-device", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--faster-whisper-compute-type", metavar="TYPE")
    parser.add_argument("--whisper-cpp-model", metavar="FILE")
    parser.add_argument("--vosk-model", metavar="DIR")
    parser.add_argument(
        "--vad",
        action="store_true",
        help="recognise each file's VAD speech regions instead of the whole file",
    )
    parser.add_argument("--no-pipeline", action="store_true", help="skip the pipeline overhead")
    parser.add_argument(
        "--export-wav",
        metavar="DIR",
        help="write the set as 16 kHz mono WAVs with a manifest.tsv into DIR and stop "
        "(for a machine without Yakuba, e.g. a GPU server)",
    )
    parser.add_argument(
        "--score",
        metavar="FILE",
        help="score the last JSON line of FILE (its 'hypotheses': file, reference, "
        "hypothesis) by WER or CER for --language (or the --dataset's) and stop",
    )
    parser.add_argument("--show-text", action="store_true", help="print every hypothesis")
    parser.add_argument("--json-only", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    return args


def configure(args: argparse.Namespace, scratch: Path) -> str:
    """Environment for Django (read once at setup) and the engines; the set's language."""
    for option, variable in ENV_OPTIONS.items():
        value = getattr(args, option)
        if value:
            os.environ[variable] = str(Path(value).resolve()) if "model" in option else value
    language = args.language
    if language is None and args.dataset in SHIPPED:
        language = SHIPPED[args.dataset].language
    if language:
        os.environ["YAKUBA_ASR_LANGUAGE"] = language
    os.environ["YAKUBA_ASR_THREADS"] = str(args.threads)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "yakuba.settings",
            # The database, media and secret key of this run stay in the scratch folder.
            "DATABASE_URL": f"sqlite:///{scratch / 'bench.sqlite3'}",
            "YAKUBA_VAR_DIR": str(scratch),
            "YAKUBA_MINUTES_MEDIA_DIR": str(scratch / "media"),
            # The joined recording of a large set of one's own may pass the upload limit,
            # which is not what is measured here.
            "YAKUBA_MINUTES_MAX_UPLOAD_MB": "1000000",
            "REDIS_URL": "",
            "YAKUBA_MAIL_ENABLED": "false",
        }
    )
    import django

    django.setup()
    from django.conf import settings

    # faster-whisper logs every call at INFO ("Processing audio with duration …").
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)

    return language or str(settings.MINUTES_ASR_LANGUAGE)


def pin_to_one_cpu() -> int | None:
    """Pin this process (and what it starts) to one CPU: the last one allowed, which is
    less often the one the kernel's interrupts land on."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    if args.score:
        language = args.language or SHIPPED.get(args.dataset, SHIPPED["english"]).language
        try:
            print(json.dumps(score_file(Path(args.score), language), ensure_ascii=False))
        except UsageError as exc:
            print(f"bench/asr.py: {exc}", file=sys.stderr)
            return 2
        return 0
    out = sys.stderr
    quiet = args.json_only
    scratch = Path(tempfile.mkdtemp(prefix="yakuba-bench-asr-"))
    try:
        language = configure(args, scratch)
        cpu = pin_to_one_cpu() if args.threads == 1 else None
        if args.dataset in SHIPPED:
            dataset = shipped_dataset(args.dataset)
        else:
            dataset = folder_dataset(Path(args.dataset), language)
        dataset.language = language
        cer = uses_cer(language)
        asked = [name.strip() for name in args.engines.split(",")] if args.engines else None
        engines, skipped = choose_engines(asked, language)
        decoded = decode_all(dataset, scratch)
        if args.export_wav:
            print(json.dumps(export_wav(decoded, Path(args.export_wav))))
            return 0
        setup = None if args.no_pipeline else setup_pipeline(scratch, decoded)
        unit = "vad" if args.vad else "file"
        rows = []
        for name in engines:
            if not quiet:
                print(f"{name}: recognising {len(decoded)} files…", file=out)
            run = run_engine(name, decoded, cer=cer, use_vad=args.vad)
            if args.show_text and not quiet:
                print_texts(run, out)
            pipeline = None
            if setup is not None and run.files:
                try:
                    pipeline = run_pipeline(name, setup)
                except Exception as exc:
                    # Reported, like an engine's error: the other engines still run.
                    english = getattr(exc, "english", str(exc))
                    pipeline = {"status": "error", "error": f"{type(exc).__name__}: {english}"}
            rows.append(engine_json(run, pipeline, cer=cer, threads=args.threads, unit=unit))
        load_1m = os.getloadavg()[0]
        summary = {
            "engines": rows,
            "skipped": skipped,
            "dataset": dataset.name,
            "language": language,
            "cpu": cpu_label(),
            "pinned_cpu": cpu,
            "load_1m": round(load_1m, 2),
            "harness_cpu_s": round(harness_cpu_s(), 2),
            "targets": {
                "pocketsphinx_rtf": TARGET_RTF["pocketsphinx"],
                "pipeline_overhead_pct": TARGET_OVERHEAD_PCT,
            },
        }
        if not quiet:
            print(
                f"\n{dataset.name}: {len(decoded)} files, language {language}, "
                f"{'cer' if cer else 'wer'}, unit {unit}, threads {args.threads}, "
                f"{summary['cpu']}, load {load_1m:.2f}",
                file=out,
            )
            print_table(rows, skipped, out)
        print(json.dumps(summary, ensure_ascii=False))
        return 0
    except UsageError as exc:
        print(f"bench/asr.py: {exc}", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
