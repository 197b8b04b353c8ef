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
``bench/voice.py --turns``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import connect

from bench.procs import FakeLLM, ServerProcess, print_tables, run_main, server_env
from bench.stats import p50_p95, pct

EN = [
    "Please turn on all the kitchen lights now.",
    "Could you remind me to call my sister about the trip on Friday?",
    "I spent the whole afternoon at the library reading about big ships.",
    "What is the weather going to be like tomorrow morning?",
    "My friend and I walked along the river this morning.",
]
KO = ["오늘 날씨가 정말 좋네요.", "내일 아침에 같이 산책하러 갈까요?"]
PAUSED = [
    ("I would like to book a table for two at", "seven in the evening, please."),
    ("Tomorrow I have to go to the dentist and", "then pick up my brother from school."),
    ("Could you tell me how long it takes to get to", "the airport from here by train?"),
    ("My favourite kind of music is", "old jazz from the fifties."),
    ("I was thinking that maybe we could", "watch a movie together tonight."),
]
BACKCHANNELS = ["Mm-hmm.", "Yeah.", "Uh-huh.", "Right.", "Okay."]
STOPS = ["Wait, stop.", "Stop please.", "Hold on.", "Wait a second.", "Stop."]
USER_OVER_ECHO = "What time is it in Seoul right now?"
HEARD = ("transcript.done", "input_audio.backchannel")
ROWS = ("latency", "paused", "trailing", "backchannels", "stops", "first_stops", "echo", "gaze")
TARGETS = {
    "eos_audio_p50": 550,
    "eos_audio_p95": 800,
    "cut_off": 1,
    "decision_cpu_p50": 15,
    "backchannel_cancels": 0,
    "stop_cancel_within_ms": 300,
}


class Client:
    """tests.server_harness.WsClient that timestamps reply audio as it arrives."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.audio_at: dict[str, float] = {}  # response_id -> first 0x11 frame received

    @classmethod
    async def open(cls, url: str) -> Client:
        from tests.server_harness import WsClient

        ws = WsClient(await connect(url, max_size=8 << 20, open_timeout=10))
        c = cls(ws)
        recv = ws.conn.recv

        async def stamped_recv(*args: Any, **kwargs: Any) -> Any:
            # stamped as it is read, not when the next JSON event arrives: that one may come
            # much later (the stamp read 18-290 ms late, varying by run)
            msg = await recv(*args, **kwargs)
            if isinstance(msg, bytes) and msg[:1] == b"\x11":
                c.audio_at.setdefault(f"resp_{int.from_bytes(msg[1:5], 'big')}", time.monotonic())
            return msg

        ws.conn.recv = stamped_recv  # type: ignore[method-assign]
        return c

    async def until(self, pred: Any, timeout: float) -> dict[str, Any] | None:
        """Read events until ``pred(event)``; None on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                ev = await self.ws.next_event(timeout=min(0.2, deadline - time.monotonic()))
                if pred(ev):
                    return ev
        return None

    async def drain(self, seconds: float) -> None:
        await self.until(lambda _e: False, seconds)

    def of(self, kind: str, since: int = 0) -> list[dict[str, Any]]:
        return [e for e in self.ws.events[since:] if e["type"] == kind]


async def session(server: ServerProcess, user: str, persona: str = "emma") -> Client:
    c = await Client.open(server.ws_url(persona=persona, token=user))
    await c.until(lambda e: e["type"] == "session.created", 20)
    return c


async def request_reply(c: Client, mic: Any) -> str:
    """A long reply by text; returns its id once the client plays it."""
    await c.ws.send({"type": "input_text", "text": "Please tell me a long story."})
    ev = await c.until(lambda e: e["type"] == "response.created", 30)
    assert ev is not None
    rid = ev["response_id"]
    while rid not in mic.played:
        await c.drain(0.05)
    return rid


async def cancel(c: Client, mic: Any, rid: str) -> None:
    await c.ws.send({"type": "response.cancel"})
    mic.stop_playback(rid)
    await c.until(lambda e: e["type"] == "response.done" and e["response_id"] == rid, 20)


# --- rows ------------------------------------------------------------------------------------
async def latency(server: ServerProcess, n: int) -> dict[str, Any]:
    from tests.mic import Mic
    from tests.speech import speak, speech_offset_ms

    out: dict[str, Any] = {}
    for lang, texts, persona, count in (
        ("en", EN, "emma", n),
        ("ko", KO, "이서아", max(4, n // 5)),
    ):
        c = await session(server, f"lat-{lang}", persona)
        eos_audio: list[float] = []
        steps: list[dict[str, Any]] = []
        async with Mic(c.ws, noise_dbfs=-60) as mic:
            for i in range(count):
                audio = speak(texts[i % len(texts)], "ko" if lang == "ko" else "en-us")
                start, _ = mic.say(audio, 400)
                eos_sample = start + int(speech_offset_ms(audio) * 16)
                since = len(c.ws.events)
                eos = await mic.until(eos_sample)
                ev = await c.until(lambda e: e["type"] == "response.created", 30)
                if ev is None:
                    continue
                rid = ev["response_id"]
                while rid not in c.audio_at:
                    await c.drain(0.02)
                eos_audio.append((c.audio_at[rid] - eos) * 1000)
                await c.drain(0.3)  # let played_ms: 0 reach the server
                await cancel(c, mic, rid)
                done = [e for e in c.of("response.done", since) if e["response_id"] == rid]
                if done:
                    steps.append(done[0]["timings"])
                await c.drain(0.5)
        await c.ws.conn.close()
        out[lang] = {"eos_audio": eos_audio, "steps": steps}
    return out


async def paused(server: ServerProcess, n: int) -> dict[str, Any]:
    from tests.mic import Mic

    c = await session(server, "paused")
    await c.ws.send({"type": "session.update", "session": {"output_audio": "none"}})
    cut = 0
    texts = []
    async with Mic(c.ws) as mic:
        for i in range(n):
            finals = await paused_trial(c, mic, *PAUSED[i % len(PAUSED)], 600 + 100 * (i % 4))
            texts.append(finals)
            cut += len(finals) > 1
    await c.ws.conn.close()
    return {"cut": cut, "n": n, "texts": texts}


async def trailing(server: ServerProcess, n: int) -> dict[str, Any]:
    """Sentences that trail off ("... for two at") and then nothing: the detector waits
    (up to the eagerness cap) before the turn ends. A preemptive start asks the model during
    that wait, so the turn's end -> first token is what it saves."""
    from tests.mic import Mic
    from tests.speech import speak

    c = await session(server, "trailing")
    await c.ws.send({"type": "session.update", "session": {"output_audio": "none"}})
    steps: list[dict[str, Any]] = []
    async with Mic(c.ws) as mic:
        for i in range(n):
            a, _ = PAUSED[i % len(PAUSED)]
            mic.say(speak(a), 400)
            ev = await c.until(lambda e: e["type"] == "response.done", 30)
            if ev is not None and ev.get("timings"):
                steps.append(ev["timings"])
            await c.drain(0.5)
    await c.ws.conn.close()
    return {"steps": steps, "n": n}


async def paused_trial(
    c: Client, mic: Any, a: str, b: str, pause_ms: int, look: Any = None
) -> list[str]:
    """Say ``a``, pause, say ``b``; the transcripts heard. ``look(a_start, a_end, b_start)``
    (mic samples) lets a face tracker look away somewhere in between (bench/voice_gaze.py)."""
    from tests.speech import speak

    since = len(c.ws.events)
    a_start, a_end = mic.say(speak(a), 400)
    b_start, end = mic.say(speak(b), pause_ms)
    if look is not None:
        look(a_start, a_end, b_start)
    await mic.until(end)
    await c.drain(2.0)
    # a loaded server's transcript can come later than 2 s: count after the reply too
    await c.until(lambda e: e["type"] == "response.done", 10)
    await c.drain(0.3)
    return [f["text"] for f in c.of("transcript.done", since)]


async def backchannels(server: ServerProcess, n: int) -> dict[str, Any]:
    from tests.mic import Mic
    from tests.speech import speak

    c = await session(server, "bc")
    cancels = done = 0
    cancelled_by: list[list[str]] = []  # the transcripts of the speech that cancelled
    async with Mic(c.ws) as mic:
        while done < n:
            rid = await request_reply(c, mic)
            await c.drain(1.0)
            ended: list[dict[str, Any]] = []
            for _ in range(6):
                if done >= n:
                    break
                since = len(c.ws.events)
                _, end = mic.say(speak(BACKCHANNELS[done % len(BACKCHANNELS)]), 0)
                await mic.until(end)
                await c.drain(2.5)
                done += 1
                # a reply that played to its end (completed) needs a new one for the next
                ended = [e for e in c.of("response.done") if e["response_id"] == rid]
                if ended and ended[0]["status"] == "cancelled":
                    cancels += 1
                    cancelled_by.append([e["text"] for e in c.of("transcript.done", since)])
                if ended:
                    break
            if not ended:
                await cancel(c, mic, rid)
    heard = [e["text"] for e in c.of("input_audio.backchannel")]
    await c.ws.conn.close()
    return {"cancels": cancels, "n": done, "backchannels": heard, "cancelled_by": cancelled_by}


async def stop_trial(c: Client, mic: Any, phrase: str, gap_s: float) -> list[Any]:
    """Ask for a reply, say ``phrase`` ``gap_s`` after it starts playing: [the phrase, what
    was heard, phrase end -> response.done cancelled in ms (None: not cancelled)]."""
    from tests.speech import speak, speech_offset_ms

    rid = await request_reply(c, mic)
    await c.drain(gap_s)
    since = len(c.ws.events)
    audio = speak(phrase)
    start, _ = mic.say(audio, 0)
    end_at = await mic.until(start + int(speech_offset_ms(audio) * 16))
    ev = await c.until(lambda e, r=rid: e["type"] == "response.done" and e["response_id"] == r, 8)
    delay = None
    if ev is None or ev["status"] != "cancelled":
        await cancel(c, mic, rid)
    else:
        delay = (ev["_t"] - end_at) * 1000
        mic.stop_playback(rid)
    await c.until(lambda e: e["type"] == "response.done", 15)  # the stop's own turn
    said = [e["text"] for e in c.ws.events[since:] if e["type"] in HEARD]
    await c.drain(0.5)
    newest = c.of("response.created")[-1]["response_id"]
    if newest != rid and not [e for e in c.of("response.done") if e["response_id"] == newest]:
        await cancel(c, mic, newest)
    return [phrase, said, delay]


def stop_result(heard: list[list[Any]], n: int) -> dict[str, Any]:
    delays = [h[2] for h in heard if h[2] is not None]
    return {"delays": delays, "missed": n - len(delays), "n": n, "heard": heard}


async def stops(server: ServerProcess, n: int) -> dict[str, Any]:
    from tests.mic import Mic

    c = await session(server, "stop")
    async with Mic(c.ws) as mic:
        heard = [await stop_trial(c, mic, STOPS[i % len(STOPS)], 1.5) for i in range(n)]
    await c.ws.conn.close()
    return stop_result(heard, n)


async def first_stops(server: ServerProcess, n: int) -> dict[str, Any]:
    """A stop 300 ms into a session's first reply (before the echo canceller measured
    whether the reply comes back through the mic), a new session each time, alternately
    over headphones and over speakers (the reply's echo at -6 dB, 30 ms late)."""
    from tests.mic import Mic

    heard = []
    for i in range(n):
        c = await session(server, f"first-stop-{i}")
        echo = {"echo_db": -6.0, "echo_delay_ms": 30, "seed": i} if i % 2 else {}
        async with Mic(c.ws, noise_dbfs=-50.0, **echo) as mic:  # type: ignore[arg-type]
            heard.append(await stop_trial(c, mic, STOPS[i % len(STOPS)], 0.3))
        await c.ws.conn.close()
    return stop_result(heard, n)


async def echo(server: ServerProcess, n: int) -> dict[str, Any]:
    from tests.mic import Mic
    from tests.speech import speak

    c = await session(server, "echo")
    barges = 0
    since = len(c.ws.events)
    for i in range(n):
        delay = 30 + (90 * i) // max(1, n - 1)
        async with Mic(c.ws, echo_db=-6.0, echo_delay_ms=delay, noise_dbfs=-50.0, seed=i) as mic:
            rid = await request_reply(c, mic)
            ev = await c.until(
                lambda e, r=rid: e["type"] == "response.done" and e["response_id"] == r, 4.0
            )
            if ev is not None and ev["status"] == "cancelled":
                barges += 1
            else:
                await cancel(c, mic, rid)
            await c.drain(1.0)  # the echo tail
    started = len(c.of("input_audio.speech_started", since))
    transcripts = len(c.of("transcript.done", since))
    # the user over the echo
    wers: list[float] = []
    for i in range(max(3, n // 4)):
        async with Mic(c.ws, echo_db=-6.0, echo_delay_ms=80, noise_dbfs=-50.0, seed=100 + i) as mic:
            mark = len(c.ws.events)
            rid = await request_reply(c, mic)
            await c.drain(1.0)
            mic.say(speak(USER_OVER_ECHO), 0)
            got = await c.until(lambda e: e["type"] == "transcript.done", 20)
            wers.append(wer(got["text"] if got else "", USER_OVER_ECHO))
            mic.stop_playback(rid)
            await c.drain(0.5)
            for e in c.ws.events[mark:]:
                if e["type"] == "response.created" and not [
                    d for d in c.of("response.done", mark) if d["response_id"] == e["response_id"]
                ]:
                    await cancel(c, mic, e["response_id"])
    await c.ws.conn.close()
    return {"barges": barges, "started": started, "transcripts": transcripts, "n": n, "wer": wers}


def wer(got: str, want: str) -> float:
    """Word error rate (Levenshtein over normalised words)."""
    g, w = re.findall(r"[a-z0-9']+", got.lower()), re.findall(r"[a-z0-9']+", want.lower())
    d = list(range(len(g) + 1))
    for i, ww in enumerate(w, 1):
        prev, d[0] = d[0], i
        for j, gg in enumerate(g, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (ww != gg))
    return d[len(g)] / max(1, len(w))


def decision_cpu_in_process(n: int) -> list[float]:
    from server.turns.model import SmartTurnModel
    from tests.speech import speak, with_silence

    model = SmartTurnModel()
    out = []
    for i in range(n):
        audio = with_silence(speak(EN[i % len(EN)]), 300, 100)
        out.append(model.timed_score(audio)[1])
    return out


async def gaze_rows(server: ServerProcess, n: int) -> dict[str, Any]:
    from bench.voice_gaze import run as gaze_run

    return await gaze_run(server, n)


# --- report ----------------------------------------------------------------------------------
def report(res: dict[str, Any]) -> str:
    """The table of the rows that ran."""
    rows: list[tuple[str, str, str]] = []

    def row(label: str, measured: str, goal: str) -> None:
        rows.append((label, measured, goal))

    if "latency" in res:
        lat = res["latency"]
        en = lat["en"]["eos_audio"]
        row(
            "EN end of speech -> first reply audio, p50 (ms)",
            f"{pct(en, 50):.0f} (n={len(en)})",
            "<= 550",
        )
        row("EN end of speech -> first reply audio, p95 (ms)", f"{pct(en, 95):.0f}", "<= 800")
        ko = lat["ko"]["eos_audio"]
        row(
            "KO end of speech -> first reply audio, p50/p95 (ms)",
            f"{p50_p95(ko)} (n={len(ko)})",
            "reported",
        )
        for key in (
            "eos_to_turn_ms",
            "eos_to_transcript_ms",
            "eos_to_llm_ms",
            "eos_to_first_token_ms",
            "eos_to_first_audio_ms",
            "eos_to_played_ms",
        ):
            v = [t[key] for t in lat["en"]["steps"] if t.get(key) is not None]
            row(f"  server timings {key}, p50/p95", p50_p95(v), "")
    if "paused" in res:
        p = res["paused"]
        row(
            "paused sentences (600-900 ms pause) cut in two",
            f"{p['cut']} of {p['n']}",
            "<= 1 of 20",
        )
    if "latency" in res:
        steps = res["latency"]["en"]["steps"] + res["latency"]["ko"]["steps"]
        srv_cpu = [t["turn_cpu_ms"] for t in steps if t.get("turn_cpu_ms") is not None]
        row(
            "end-of-turn decision CPU p50, server turn_cpu_ms (ms)",
            f"{pct(srv_cpu, 50):.1f}",
            "<= 15",
        )
        ran = [v for v in srv_cpu if v > 0]  # 0: the words settled the pause, no model run
        row(
            "  ... the model's own cost when it ran, p50 (ms)",
            f"{pct(ran, 50):.1f} (ran at {len(ran)} of {len(srv_cpu)} turns)",
            "",
        )
    cpu_in = res["cpu_in_process"]
    row("end-of-turn decision CPU p50, in process (ms)", f"{pct(cpu_in, 50):.1f}", "<= 15")
    if "backchannels" in res:
        b = res["backchannels"]
        row("backchannels over a reply that cancel it", f"{b['cancels']} of {b['n']}", "0 of 20")
    for key, what in (
        ("stops", "stop phrases"),
        ("first_stops", "stops 300 ms into a first reply"),
    ):
        if key not in res:
            continue
        s = res[key]
        within = sum(d <= 300 for d in s["delays"])
        row(f"{what} that cancel the reply", f"{len(s['delays'])} of {s['n']}", "20 of 20")
        row("  ... within 300 ms of the phrase's end", f"{within} of {s['n']}", "20 of 20")
        row(
            "  phrase end -> response.done cancelled, p50/p95 (ms)",
            p50_p95(s["delays"]),
            "",
        )
    if "trailing" in res:
        ts = [t for t in res["trailing"]["steps"] if t.get("eos_to_first_token_ms") is not None]
        gap = [t["eos_to_first_token_ms"] - t["eos_to_turn_ms"] for t in ts]
        first = [t["eos_to_first_token_ms"] for t in ts]
        row(
            "trailing-off sentences: turn end -> first token, p50/p95 (ms)",
            f"{p50_p95(gap)} (n={len(gap)})",
            "reported",
        )
        row(
            "  ... end of speech -> first token, p50/p95 (ms)",
            p50_p95(first),
            "",
        )
    if pre := res.get("preemptive"):
        row(
            "preemptive starts: kept / discarded (all rows)",
            f"{pre['preemptive_kept']} / {pre['preemptive_discarded']}",
            f"of {pre['preemptive_start']} started",
        )
    if decodes := res.get("decodes"):
        waits = [d.get("stt_wait_ms", 0) for d in decodes]
        queued = [w for w in waits if w > 0]
        row(
            "final decodes queued behind another, wait p50/p95 (ms)",
            f"{len(queued)} of {len(waits)}: {p50_p95(queued)}",
            "reported",
        )
        if pre:
            wasted = pre["preemptive_discarded"] / len(decodes)
            row("  ... preemptive starts discarded per turn", f"{wasted:.2f}", "reported")
    if "echo" in res:
        e = res["echo"]
        row("echo -6 dB, 30-120 ms, noise: barge-ins", f"{e['barges']} of {e['n']} replies", "0")
        row("  ... speech_started / transcripts", f"{e['started']} / {e['transcripts']}", "0 / 0")
        row(
            "  user speaking over the echo: WER, mean",
            f"{np.mean(e['wer']):.2f} (n={len(e['wer'])})",
            "reported",
        )
    w = max(len(r[0]) for r in rows) + 2
    lines = [f"{'turn taking (issue 19)':<{w}}{'measured':<26}goal", "-" * (w + 40)]
    lines += [f"{a:<{w}}{m:<26}{g}" for a, m, g in rows]
    if "gaze" in res:  # bench/voice_gaze.py: its own table, gaze on vs off
        from bench.voice_gaze import table

        lines += ["", table(res["gaze"])]
    return "\n".join(lines)


async def run(
    n: int, workdir: Path, rows: tuple[str, ...] = ROWS, over: dict[str, str] | None = None
) -> dict[str, Any]:
    from tests.speech import whisper_base_dir

    res: dict[str, Any] = {"cpu_in_process": await asyncio.to_thread(decision_cpu_in_process, n)}
    fake = FakeLLM(workdir / "fake.log", ttft_ms=200, token_ms=20, tokens=60)
    await fake.start()
    env = server_env(
        {
            "DATA_DIR": str(workdir / "data"),
            "LLM_BASE_URL": fake.base_url,
            "LLM_API_KEY": "x",
            "LLM_MODEL": "fake-model",
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
