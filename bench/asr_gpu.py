"""Real-time factor of faster-whisper on a GPU, for a machine that has no Yakuba on it.

``bench/asr.py`` measures every engine through Yakuba itself; a lent GPU machine has
neither Django nor our other dependencies, so this script needs only faster-whisper,
CTranslate2 and NumPy.  It reads a folder prepared by ``bench/asr.py --export-wav DIR``
(16 kHz mono WAVs with a ``manifest.tsv`` of ``file<TAB>reference``), recognises each file
with the same settings as Yakuba's engine (``yakuba/minutes/asr/faster_whisper_engine.py``:
given language, no VAD filter, no conditioning on previous text), and prints as its last
line one JSON object: device, compute type, audio seconds, engine seconds, rtf, load
seconds and each hypothesis, which ``bench/asr.py --score FILE`` turns into a CER/WER.

    python bench/asr_gpu.py --model DIR --audio DIR [--device cuda] [--compute-type float16]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import types
import wave
from pathlib import Path


def without_pyav() -> None:
    """faster-whisper imports PyAV at start-up only to decode files; we hand it samples,
    so a machine without PyAV gets an empty stand-in rather than a 36 MB wheel."""
    try:
        import av  # noqa: F401
    except ImportError:
        sys.modules["av"] = types.ModuleType("av")


def read_samples(path: Path):
    import numpy as np

    with wave.open(str(path), "rb") as wav:
        if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (16000, 1, 2):
            raise SystemExit(f"{path}: not 16 kHz mono 16-bit")
        pcm = wav.readframes(wav.getnframes())
    return np.frombuffer(pcm, dtype=np.int16).astype(np.float32) / 32768.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a CTranslate2 Whisper model folder")
    parser.add_argument("--audio", required=True, help="folder with manifest.tsv and WAVs")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--compute-type", default="float16")
    parser.add_argument("--language", default="ja")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the set (best kept)")
    args = parser.parse_args()

    without_pyav()
    from faster_whisper import WhisperModel

    folder = Path(args.audio)
    items = [
        line.split("\t", 1)
        for line in (folder / "manifest.tsv").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    clips = [(name, read_samples(folder / name), reference) for name, reference in items]
    audio_s = sum(len(samples) for _, samples, _ in clips) / 16000

    started = time.perf_counter()
    model = WhisperModel(args.model, device=args.device, compute_type=args.compute_type)
    load_s = time.perf_counter() - started

    def recognise(samples) -> str:
        segments, _info = model.transcribe(
            samples,
            language=args.language,
            beam_size=args.beam_size,
            vad_filter=False,
            condition_on_previous_text=False,
        )
        return "".join(segment.text for segment in segments).strip()

    recognise(clips[0][1])  # warm-up: CUDA kernels and memory pools
    best = float("inf")
    hypotheses: list[dict[str, str]] = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        texts = [recognise(samples) for _, samples, _ in clips]
        best = min(best, time.perf_counter() - started)
        hypotheses = [
            {"file": name, "reference": ref, "hypothesis": text}
            for (name, _, ref), text in zip(clips, texts, strict=True)
        ]
    for item in hypotheses:
        print(f"{item['file']}: {item['hypothesis']}", file=sys.stderr)
    print(
        json.dumps(
            {
                "engine": "faster-whisper",
                "model": args.model,
                "device": args.device,
                "compute_type": args.compute_type,
                "files": len(clips),
                "audio_s": round(audio_s, 2),
                "engine_s": round(best, 3),
                "rtf": round(best / audio_s, 4),
                "load_s": round(load_s, 2),
                "rounds": args.rounds,
                "hypotheses": hypotheses,
            },
            ensure_ascii=False,
        )
    )


if __name__ == "__main__":
    main()
