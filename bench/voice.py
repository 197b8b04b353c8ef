"""Voice loop latency benchmark: end of speech -> final transcript -> first reply audio,
and barge-in -> cancelled.

Two parts, never running at the same time (they would share the CPU):

1. In process: faster-whisper ``base`` int8 (the model the dev packages ship,
   ``tests.speech.whisper_base_dir()``) transcribes the benchmark utterances directly:
   final decode (beam 5 + temperature fallback) and partial decode (greedy, no timestamps),
   -> decode ms and real-time factor per utterance length. espeak-ng's time to its first
   audio chunk for the reply's first sentence (a term of the first-audio target), and the
   cost of the edge-tts -> espeak-ng fallback when edge is unreachable (simulated on loopback
   only: edge-tts pointed at a refused proxy port and at a proxy that never answers).
2. Over the wire: the fake OpenAI server (``bench.fake_llm`` in its own process; TTFT
   200 ms, 20 ms/token) and the real server (``desktopmate serve --port 0``, another
   process, ``TTS_PROVIDER=espeak``, ``VAD_SILENCE_MS=500``, ``MEMORY_ENABLED=false``,
   ``LOG_FORMAT=json``). This script is the client: a microphone that streams 20 ms PCM16
   frames in real time on a monotonic schedule (silence whenever nothing is being said),
   espeak-ng sentences of about 2..6 s as the user's speech.

Definitions (all client clocks are ``time.monotonic()``):

- end of speech (EOS): the send time of the mic frame holding the last speech sample
  (``tests.speech.speech_offset_ms`` of the utterance audio).
- EOS -> ``input_audio.speech_stopped`` / -> ``transcript.done``: receive times minus EOS.
- transcript.done -> first audio: receive time of the reply's first binary ``0x11`` frame
  minus that of ``transcript.done``. Target: LLM TTFT + (tokens up to the SentenceChunker's
  first cut - 1) x token gap + espeak first-chunk time (measured in part 1) + 30 ms.
- barge-in: while a long reply plays, the mic speaks. The server's VAD (32 ms windows)
  confirms speech (``speech_started``) after ``ceil(250/32)*32 = 256`` ms of audio from the
  onset and fires barge-in after ``ceil(300/32)*32 = 320`` ms. Three measures:
  (a) ``speech_started`` -> ``response.done`` (cancelled), minus the 64 ms of audio between
      the two decisions (client only, what the brief asked for);
  (b) the server's own log: ``barge_in`` -> ``response_done`` timestamps (exact server-side
      cancel latency, VAD decision to the event being queued);
  (c) end to end: the send time of the mic frame that completes the 320 ms window (the
      VAD's stream time equals the audio this client sent, so the frame is known exactly)
      -> ``response.done`` received. Includes frame transit, VAD queueing and inference.
      Split in two with the server's log timestamps (wall clock; the client maps its
      monotonic clock with one ``time.time() - time.monotonic()`` offset).

Decomposition rows come from the server's JSON log (``transcribed``: ``stt_ms`` model time,
``after_end_ms`` from the VAD's end decision to ``transcript.done``; ``barge_in``;
``response_started``/``response_done``) and the fake's request log (request received,
first token sent, on the shared CLOCK_MONOTONIC). The noise block shows the CPU other
processes used: on a 2-core host they land directly in the STT numbers.

Usage: ``uv run python -m bench.voice [--reps 4] [--lengths 2,3,4,5,6] [--quick]``.
Default run about 4 minutes on 2 cores; ``--quick`` about 1 minute. ``--raw FILE`` writes
every sample as JSON; ``--server-env KEY=VALUE`` and ``--server-path DIR`` (prepended to the
server's PYTHONPATH, e.g. a ``sitecustomize.py`` with a prototype patch) make A/B runs.

This module is the command line; the parts live in bench/voice_client.py (the utterances, the
wire client, the real-time mic), bench/voice_inprocess.py (part 1), bench/voice_drivers.py
(part 2: the server and the turns driven through it) and bench/voice_report.py (the tables).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path

from bench.procs import print_tables, run_main
from bench.voice_client import UTTERANCES, make_utt
from bench.voice_drivers import run_server_part
from bench.voice_inprocess import first_cut, measure_stt, measure_tts, reply_tokens
from bench.voice_report import build_report

LOG_EVENTS = ("transcribed", "barge_in", "response_done", "response_started")


# --- main --------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--reps", type=int, default=4, help="voice turns per utterance length")
    ap.add_argument("--lengths", default="2,3,4,5,6", help="utterance lengths (s), from 2..6")
    ap.add_argument("--barge-reps", type=int, default=4)
    ap.add_argument("--text-reps", type=int, default=4, help="text turns per output format")
    ap.add_argument("--stt-reps", type=int, default=2, help="in-process decodes per length")
    ap.add_argument("--format", choices=("pcm16", "mp3"), default="pcm16", help="reply audio")
    ap.add_argument("--silence-ms", type=int, default=500, help="server VAD_SILENCE_MS")
    ap.add_argument("--ttft-ms", type=float, default=200)
    ap.add_argument("--token-ms", type=float, default=20)
    ap.add_argument("--tokens", type=int, default=40, help="reply length (long: barge-in)")
    ap.add_argument("--quick", action="store_true", help="2 reps, 3 s only, no text turns")
    ap.add_argument(
        "--turns",
        action="store_true",
        help="the turn-taking targets instead (bench/voice_turns.py: semantic turns, "
        "backchannels, stop phrases, echo, latency to first audio)",
    )
    ap.add_argument("--turns-n", type=int, default=20, help="trials per turn-taking row")
    ap.add_argument("--max-seconds", type=float, default=600, help="hard limit for the run")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (server log)")
    ap.add_argument("--nice", type=int, default=None, help="niceness (as bench/latency.py)")
    ap.add_argument("--raw", type=Path, help="also write every measurement to this JSON file")
    ap.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra server environment (repeatable), e.g. STT_PARTIAL_INTERVAL_MS=1000",
    )
    ap.add_argument(
        "--server-path",
        action="append",
        default=[],
        metavar="DIR",
        help="prepended to the server's PYTHONPATH (A/B a prototype via sitecustomize.py)",
    )
    args = ap.parse_args(argv)
    args.lengths = [int(x) for x in args.lengths.split(",") if x.strip()]
    if args.quick:
        args.reps, args.lengths, args.barge_reps, args.text_reps, args.stt_reps = 2, [3], 2, 0, 2
    if unknown := [x for x in args.lengths if x not in UTTERANCES]:
        ap.error(f"no utterance of {unknown} s; choose from {sorted(UTTERANCES)}")
    return args


async def amain(args: argparse.Namespace) -> int:
    from server.logging import configure_logging
    from tests.speech import whisper_base_dir

    configure_logging("ERROR")  # the in-process fallback test would log tts.degraded warnings
    stt_dir = whisper_base_dir()

    async def tables(base: Path) -> AsyncIterator[str]:
        utts = {s: make_utt(s, UTTERANCES[s]) for s in sorted({*args.lengths, 2})}
        print("in process: STT decodes ...", flush=True)
        stt = await asyncio.to_thread(
            measure_stt, [utts[s] for s in args.lengths], stt_dir, args.stt_reps
        )
        print("in process: TTS first chunk and edge fallback ...", flush=True)
        _, chunk = first_cut(reply_tokens(args.tokens))
        tts = await measure_tts(chunk, args.stt_reps)
        print("server: voice turns, barge-in, text turns ...", flush=True)
        res = await run_server_part(args, base, stt_dir, utts)
        if args.raw:
            raw = {
                "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "utterances": {s: [u.text, u.onset_ms, u.offset_ms] for s, u in utts.items()},
                "stt": stt,
                "tts": tts,
                "turns": [asdict(t) for t in res.turns],
                "barges": [asdict(b) for b in res.barges],
                "texts": [asdict(t) for t in res.texts],
                "llm": res.llm,
                "log": [e for e in res.log if e.get("event") in LOG_EVENTS],
                "cpu": res.cpu,
                "loop_lag": res.loop_lag,
                "wall_minus_mono": res.wall_minus_mono,
            }
            args.raw.write_text(json.dumps(raw, indent=1, default=str))
        yield build_report(args, utts, stt, tts, res)

    return await print_tables(args, "dm-voicebench-", tables)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.turns:
        from bench import voice_turns

        return voice_turns.main(
            [
                f"--n={args.turns_n}",
                *(["--keep"] if args.keep else []),
                *(f"--server-env={kv}" for kv in args.server_env),
            ]
        )
    return run_main(args, amain)


if __name__ == "__main__":
    sys.exit(main())
