"""bench/voice_turns.py's rows: each drives its trials through the server as a user with a
real-time mic (``tests.mic.Mic``) and returns what it measured for the table."""

from __future__ import annotations

import re
from typing import Any

from bench.procs import ServerProcess
from bench.turn_phrases import BACKCHANNELS, EN, KO, PAUSED, STOPS, USER_OVER_ECHO
from bench.voice_turns_client import Client, cancel, request_reply, session

HEARD = ("transcript.done", "input_audio.backchannel")


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
    end = start + int(speech_offset_ms(audio) * 16)

    def done(e: dict[str, Any], r: str = rid) -> bool:
        return e["type"] == "response.done" and e["response_id"] == r

    # read events while the phrase plays, so a cancel that comes before its end is stamped
    # when it came (a negative delay), not when the phrase's end was reached
    ev = None
    while mic.now_sample < end and ev is None:
        ev = await c.until(done, 0.02)
    end_at = await mic.until(end)
    ev = ev or await c.until(done, 8)
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
