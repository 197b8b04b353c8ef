"""Turn-taking targets (issue 19), measured from outside as a user would: the real server
(``desktopmate serve``, semantic turns, espeak TTS, pcm16 replies) and the fake LLM in its
own process (TTFT 200 ms, 20 ms per token), with this script as a desktop client whose mic
(``tests.mic.Mic``) streams 20 ms frames in real time with room noise, plays every reply
(reporting ``played_ms: 0`` at its start) and, for the echo rows, hears it back.

Rows (measured vs goal):

- end of speech -> first reply audio received, 20 complete English sentences (Korean
  reported): EOS = the send time of the mic frame holding the last loud sample.
- the server's own ``response.done.timings`` for the same turns (eos_to_* steps).
- paused sentences (600-900 ms thinking pause mid-sentence) cut in two, of 20.
- end-of-turn decision CPU: the model's thread CPU per pause (server's ``turn_cpu_ms``) and
  in process (features + ONNX), p50.
- backchannels over a playing reply ("mm-hm", "yeah", ...) that cancel it, of 20.
- stop phrases over a playing reply that cancel it, and the time from the phrase's end to
  ``response.done`` cancelled, of 20; the same said 300 ms into a session's first reply
  (before the echo canceller knows whether the reply comes back through the mic), over
  headphones and over speakers in turn (``first_stops``).
- the reply's own audio fed back at -6 dB, 30-120 ms late, noise at -50 dBFS: barge-ins,
  speech_started and transcripts in 20 replies; the user speaking over that echo: WER.
- trailing-off sentences ("... for two at", then silence): the turn's end -> first token
  and end of speech -> first token (server timings), what a preemptive start saves.
- preemptive starts (TURN_PREEMPTIVE) over the whole run, from the server's log: kept,
  discarded. ``--server-env TURN_PREEMPTIVE=false`` measures without them.
- gaze (bench/voice_gaze.py, its own table): the same kinds of turns with a face tracker
  looking away and back, ``turn_detection.gaze`` on vs off.

Usage: ``uv run python -m bench.voice_turns [--n 20]`` (about 8 min), or via
``bench/voice.py --turns``.

This module starts the server and runs the rows; the sentences are bench/turn_phrases.py, the
client bench/voice_turns_client.py, the rows bench/voice_turns_rows.py and the table
bench/voice_turns_report.py."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from bench.procs import (
    FakeLLM,
    ServerProcess,
    fake_llm_settings,
    print_tables,
    run_main,
    server_env,
)
from bench.voice_turns_report import report
from bench.voice_turns_rows import (
    backchannels,
    decision_cpu_in_process,
    echo,
    first_stops,
    gaze_rows,
    latency,
    paused,
    stops,
    trailing,
)

ROWS = ("latency", "paused", "trailing", "backchannels", "stops", "first_stops", "echo", "gaze")
TARGETS = {
    "eos_audio_p50": 550,
    "eos_audio_p95": 800,
    "cut_off": 1,
    "decision_cpu_p50": 15,
    "backchannel_cancels": 0,
    "stop_cancel_within_ms": 300,
}


async def run(
    n: int, workdir: Path, rows: tuple[str, ...] = ROWS, over: dict[str, str] | None = None
) -> dict[str, Any]:
    from tests.speech import whisper_base_dir

    res: dict[str, Any] = {"cpu_in_process": await asyncio.to_thread(decision_cpu_in_process, n)}
    fake = FakeLLM(workdir / "fake.log", ttft_ms=200, token_ms=20, tokens=60)
    await fake.start()
    env = server_env(
        {
            **fake_llm_settings(workdir, fake.base_url),
            "MEMORY_ENABLED": "false",
            "VLM_ENABLED": "false",
            "FACE_ENABLED": "false",
            "STT_MODEL": str(whisper_base_dir()),
            "TTS_PROVIDER": "espeak",
            "DEFAULT_OUTPUT_AUDIO": "pcm16",
            "LOG_FORMAT": "json",
            "LOG_PII": "true",  # synthetic speech: --keep's server.log shows what was heard
        }
        | (over or {})  # --server-env, e.g. TURN_PREEMPTIVE=false
    )

    def stt_ready(h: dict[str, Any]) -> bool:
        return h.get("modules", {}).get("stt") == "ready"

    server = ServerProcess(workdir, env, ready=stt_ready, timeout_s=180)
    await server.start()
    try:
        for name, fn in (
            ("latency", latency),
            ("paused", paused),
            ("trailing", trailing),
            ("backchannels", backchannels),
            ("stops", stops),
            ("first_stops", first_stops),
            ("echo", echo),
            ("gaze", gaze_rows),
        ):
            if name not in rows:
                continue
            print(f"turns: {name} ...", flush=True)
            res[name] = await fn(server, n)
        kinds = ("preemptive_start", "preemptive_kept", "preemptive_discarded")
        logged = server.log_events()
        events = [e.get("event") for e in logged]
        res["preemptive"] = {k: events.count(k) for k in kinds}
        res["decodes"] = [e for e in logged if e.get("event") == "transcribed"]
    finally:
        await server.stop()
        await fake.stop()
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--n", type=int, default=20, help="trials per row")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (server log)")
    ap.add_argument(
        "--rows", default=",".join(ROWS), help=f"comma-separated subset of {','.join(ROWS)}"
    )
    ap.add_argument("--raw", type=Path, help="also write every measurement to this JSON file")
    ap.add_argument(
        "--server-env", action="append", default=[], metavar="KEY=VALUE", help="server setting"
    )
    ap.add_argument("--max-seconds", type=float, default=3600, help="hard limit for the run")
    ap.add_argument("--nice", type=int, default=None, help="niceness (as bench/latency.py)")
    args = ap.parse_args(argv)
    args.over = dict(kv.split("=", 1) for kv in args.server_env)
    args.rows = tuple(r.strip() for r in args.rows.split(",") if r.strip())
    if bad := [r for r in args.rows if r not in ROWS]:
        ap.error(f"unknown rows {bad}; choose from {ROWS}")
    return run_main(args, amain)


async def amain(args: argparse.Namespace) -> int:
    async def tables(workdir: Path) -> AsyncIterator[str]:
        res = await run(args.n, workdir, args.rows, args.over)
        if args.raw:
            args.raw.write_text(json.dumps(res, indent=1, default=str))
        yield report(res)

    return await print_tables(args, "dm-turnsbench-", tables)


if __name__ == "__main__":
    sys.exit(main())
