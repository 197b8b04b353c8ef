"""End-of-turn model CPU per decision (issue 19: "end-of-turn decision CPU time p50 <= 15 ms"),
in process, over the pauses a user makes: espeak-ng sentences (finished, and the first halves
of sentences with a thinking pause; English and Korean) with 300 ms of silence before and the
VAD's 100 ms of trailing pad after, as ``SemanticTurns`` hands them to the model.

Rows (CPU ms of the scoring thread, ``time.thread_time``, and of the process, p50 / p95):

- features, plain: faster-whisper's extractor over the whole normalised 8 s window (the
  implementation before server/turns/logmel.py).
- features, fast: ``logmel.LogMel`` (the padding's frames computed once), and the largest
  difference from the plain features and the largest score difference (both must be 0).
- ONNX run: Smart Turn v3.2 int8, one thread (``providers/onnx.cpu_session``).
- total = ``SmartTurnModel.timed_score``, what the server reports as ``turn_cpu_ms``.
- each row also as the process's CPU: a helper thread (OpenBLAS) is not seen by the
  scoring thread's clock, and on this 2-core machine the other core is transcribing.
- for scale: how much the score moves when inaudible noise (-70 dBFS, as any mic has) is
  added to the same pause: the model's own jitter, against which "identical" is judged.
- the ONNX run with 2 intra-op threads, for the record: the scoring thread's CPU drops,
  the process's does not (``thread_time`` would flatter it; the server keeps one thread).

Usage: ``uv run python -m bench.turn_model [--repeat 3]`` (about 20 s)."""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np

from bench.stats import p50_p95, pct
from bench.turn_phrases import EN, KO, PAUSED
from server.providers.onnx import cpu_session
from server.turns.model import SmartTurnModel
from tests.speech import speak, with_silence

GOAL_MS = 15.0


def clips() -> list[np.ndarray]:
    """One utterance per pause: finished sentences and unfinished first halves."""
    texts = [(t, "en-us") for t in EN] + [(a, "en-us") for a, _ in PAUSED]
    texts += [(t, "ko") for t in KO] + [("그래서 제가 생각하기에는", "ko")]
    return [with_silence(speak(t, voice), 300, 100) for t, voice in texts]


def cpu_ms(fn: Callable[[], object], out: tuple[list[float], list[float]]) -> None:
    """Append the CPU ms of ``fn`` to ``out``: (this thread's, the whole process's)."""
    t, p = time.thread_time(), time.process_time()
    fn()
    out[0].append((time.thread_time() - t) * 1000)
    out[1].append((time.process_time() - p) * 1000)


def plain_features(audio: np.ndarray) -> np.ndarray:
    from faster_whisper.feature_extractor import FeatureExtractor

    x = np.asarray(audio, dtype=np.float32)[-128_000:]
    x = np.pad(x, (128_000 - x.size, 0))
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    return FeatureExtractor(feature_size=80, chunk_length=8)(x, padding=0).astype(np.float32)


def two_thread_run(model: SmartTurnModel, feats: list[np.ndarray], repeat: int) -> list[str]:
    import onnxruntime

    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.log_severity_level = 4
    sess = onnxruntime.InferenceSession(
        str(model.path), providers=["CPUExecutionProvider"], sess_options=opts
    )
    thread, proc, wall = [], [], []
    for _ in range(repeat):
        for f in feats:
            t, p, w = time.thread_time(), time.process_time(), time.perf_counter()
            sess.run(None, {"input_features": f[None]})
            thread.append((time.thread_time() - t) * 1000)
            proc.append((time.process_time() - p) * 1000)
            wall.append((time.perf_counter() - w) * 1000)
    return [p50_p95(v, 1) for v in (thread, proc, wall)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="passes over the clips")
    args = ap.parse_args()
    load0 = os.getloadavg()[0]
    model = SmartTurnModel()
    audio = clips()
    single = cpu_session(model.path, arena=True)
    fast_f: tuple[list[float], list[float]] = ([], [])
    onnx: tuple[list[float], list[float]] = ([], [])
    total: tuple[list[float], list[float]] = ([], [])
    plain_f: tuple[list[float], list[float]] = ([], [])
    for _ in range(args.repeat):
        for a in audio:
            cpu_ms(lambda a=a: model.features(a), fast_f)
            f = model.features(a)
            cpu_ms(lambda f=f: single.run(None, {"input_features": f[None]}), onnx)
            cpu_ms(lambda a=a: model.timed_score(a), total)
    # the plain path last: OpenBLAS's helper thread keeps spinning after its products
    feat_diff, score_diff = [], []
    for _ in range(args.repeat):
        for a in audio:
            cpu_ms(lambda a=a: plain_features(a), plain_f)
    for a in audio:
        ref = plain_features(a)
        feat_diff.append(float(np.abs(model.features(a) - ref).max()))
        score_diff.append(abs(model.score(a) - model.score_features(ref)))
    rng = np.random.default_rng(0)
    jitter = [
        abs(model.score(a + rng.normal(0, 10 ** (-70 / 20), a.size).astype(np.float32)) - p)
        for a, p in zip(audio, [model.score(a) for a in audio], strict=True)
    ]
    two = two_thread_run(model, [model.features(a) for a in audio], args.repeat)

    def row(label: str, v: tuple[list[float], list[float]], goal: str = "") -> None:
        print(f"{label:<50} {p50_p95(v[0], 1):<13} | {p50_p95(v[1], 1):<13} {goal}")

    print(f"end-of-turn model, {len(audio)} pauses x {args.repeat}")
    print(f"{'CPU ms p50 / p95':<50} {'thread':<13} | {'process':<13}")
    print(f"(load average: {load0:.2f} at the start, {os.getloadavg()[0]:.2f} at the end)")
    row("features, plain (faster-whisper, whole window)", plain_f)
    row("features, fast (logmel.LogMel)", fast_f)
    print(f"  ... max |feature diff| {max(feat_diff):.1e}, max |score diff| {max(score_diff):.1e}")
    row("ONNX run, one thread", onnx)
    row("total per decision (timed_score = turn_cpu_ms)", total, f"goal p50 <= {GOAL_MS:.0f}")
    print(
        f"score |change| from -70 dBFS noise, p50 / max: {pct(jitter, 50):.3f} / {max(jitter):.3f}"
    )
    print(f"{'ONNX, 2 intra-op threads: thread | process | wall':<50} " + " | ".join(two))


if __name__ == "__main__":
    main()
