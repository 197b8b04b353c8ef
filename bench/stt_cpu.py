"""The pause decode on this CPU (issue 19): Whisper's compute type and thread count, in
process, on the audio the pause decode sees.

Why: the pause decode (``WhisperSTT.transcribe_twice``: a greedy pass, then the beam pass
on the same encoder output) is on the critical path of every voice reply, and the best
``STT_COMPUTE_TYPE`` / ``STT_CPU_THREADS`` depend on the CPU (AVX-512 / VNNI or only AVX2,
how many cores). This measures them side by side, interleaved clip by clip so load hits
every configuration alike, one ``WhisperSTT`` per configuration.

Audio: ``bench/stt_beam.py``'s English espeak-ng sentences (300 ms of silence before, the
VAD's 200 ms cut after, room noise at -60 dBFS), Whisper base of the tests.

Rows per configuration (``compute_type:threads``): the encoder run (5 s window floor), the
greedy pass, the beam pass (both timed with their encoder run inside the pass that ran it),
the process CPU per pause decode, and how many transcripts (greedy, final) differ from the
first configuration's. The header: CPU flags that matter and the compute types
CTranslate2 supports here.

Usage: ``uv run python -m bench.stt_cpu [--configs int8:2,int8:1,float32:2] [--clips 12]
[--repeat 2]`` (about 1 min per configuration)."""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.stats import p50_p95
from bench.stt_beam import MORE_EN, NOISE_DBFS, words
from bench.turn_phrases import EN
from server.providers.cpu_info import SIMD_FLAGS, cpu_model, simd_flags
from server.providers.stt import Transcript, WhisperSTT
from tests.speech import speak, whisper_base_dir, with_silence


@dataclass
class Run:
    """One configuration's model and what it measured."""

    stt: WhisperSTT
    encode_ms: list[float] = field(default_factory=list)
    encodes: list[float] = field(default_factory=list)  # this decode's (the beam pass reuses)
    greedy_ms: list[float] = field(default_factory=list)
    beam_ms: list[float] = field(default_factory=list)
    cpu_ms: list[float] = field(default_factory=list)
    greedy: list[str] = field(default_factory=list)
    final: list[str] = field(default_factory=list)


def cpu_header() -> str:
    """Model name, the SIMD flags that decide the kernels, cores, CTranslate2's types."""
    import ctranslate2

    have = ", ".join(simd_flags()) or "none of " + ", ".join(SIMD_FLAGS)
    types = ", ".join(sorted(ctranslate2.get_supported_compute_types("cpu")))
    return (
        f"CPU {cpu_model() or '?'}, {os.cpu_count()} cores, flags: {have}; ctranslate2 "
        f"{ctranslate2.__version__} compute types: {types}"
    )


def timed_encoder(run: Run) -> None:
    """Record each encoder call's wall ms (wraps the model's already-wrapped ``encode``: the
    beam pass's call returns the greedy pass's output, so a decode's first call counts)."""
    model: Any = run.stt._model
    inner = model.encode

    def encode(features: Any) -> Any:
        t = time.perf_counter()
        out = inner(features)
        run.encodes.append((time.perf_counter() - t) * 1000)
        return out

    model.encode = encode


def pause_decode(run: Run, audio: np.ndarray, keep: bool) -> None:
    """``transcribe_twice`` as the pause decode runs it, the beam pass always."""
    marks: list[float] = []

    def first(t: Transcript) -> bool:
        marks.append(time.perf_counter())
        if keep:
            run.greedy.append(t.text)
        return True

    run.encodes.clear()
    c, t0 = time.process_time(), time.perf_counter()
    final = run.stt.transcribe_twice(audio, "en", first=first)
    end = time.perf_counter()
    run.cpu_ms.append((time.process_time() - c) * 1000)
    run.encode_ms.append(run.encodes[0])
    run.greedy_ms.append((marks[0] - t0) * 1000)
    run.beam_ms.append((end - marks[0]) * 1000)
    if keep and final is not None:
        run.final.append(final.text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--configs", default="int8:2,int8:1,float32:2", help="compute_type:threads")
    ap.add_argument("--clips", type=int, default=12)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    rng = np.random.default_rng(19)
    texts = (list(EN) + MORE_EN)[: args.clips]
    clips = []
    for text in texts:
        audio = with_silence(speak(text), 300, 200)
        clips.append(audio + rng.normal(0, 10 ** (NOISE_DBFS / 20), audio.size).astype(np.float32))
    runs: dict[str, Run] = {}
    for cfg in args.configs.split(","):
        compute_type, threads = cfg.split(":")
        # quick_final_logprob 0: the beam pass always runs, so both passes are measured
        stt = WhisperSTT(whisper_base_dir(), compute_type=compute_type, cpu_threads=int(threads))
        stt.load()
        stt.transcribe(clips[0], "en")  # warm-up
        runs[cfg] = Run(stt)
        timed_encoder(runs[cfg])
    load0 = os.getloadavg()[0]
    for rep in range(args.repeat):
        order = list(runs.values()) if rep % 2 == 0 else list(runs.values())[::-1]
        for audio in clips:
            for run in order:
                pause_decode(run, audio, keep=rep == 0)
    print(cpu_header())
    print(
        f"load average {load0:.1f} -> {os.getloadavg()[0]:.1f}; {len(clips)} clips x {args.repeat}"
    )
    base = next(iter(runs.values()))
    print(
        f"{'config':<12} | encoder ms | greedy pass ms | beam pass ms | CPU ms per decode"
        " | greedy / final words differ from the first"
    )
    for cfg, r in runs.items():
        g = sum(words(a) != words(b) for a, b in zip(r.greedy, base.greedy, strict=True))
        f = sum(words(a) != words(b) for a, b in zip(r.final, base.final, strict=True))
        print(
            f"{cfg:<12} | {p50_p95(r.encode_ms):>10} | {p50_p95(r.greedy_ms):>14} |"
            f" {p50_p95(r.beam_ms):>12} | {p50_p95(r.cpu_ms):>17} | {g} / {f} of {len(texts)}"
        )
        for a, b, t in zip(r.final, base.final, texts, strict=True):
            if r is not base and words(a) != words(b):
                print(f"  {cfg}: {a!r} | first: {b!r} | said: {t!r}")


if __name__ == "__main__":
    main()
