"""The echo canceller on its own (server/turns/echo.py: WebRTC AEC3 + the reply bookkeeping),
with the real Silero VAD judging what is left: a mic that hears two replies back at -6 dB,
30 and 120 ms late (dry, or with a room's reverb), with room noise, the first one cancelled
by the client mid-way.
No server, no timing: the audio is built sample by sample."""

from __future__ import annotations

import numpy as np
import pytest

from server.providers.vad import SileroVAD
from server.turns.echo import EchoCanceller
from tests.fakes.openai_server import FakeOpenAI
from tests.speech import resample, speak

RATE = 16_000
OUT_RATE = 24_000
FRAME = 320
ECHO = 10 ** (-6 / 20)
START = (RATE // 2, 7 * RATE)  # where the client starts playing each reply (mic samples)
CUT = 3 * RATE  # the client cancels the first reply here
DELAYS = (30 * 16, 120 * 16)
USER_AT = 9 * RATE


@pytest.fixture(scope="module")
def reply() -> np.ndarray:
    """A reply as the server sends it (24 kHz), the fake LLM's benchmark sentences."""
    return speak("".join(FakeOpenAI.default_tokens(24)), "en-us", OUT_RATE)


def room(rt60_s: float) -> np.ndarray:
    """A room's impulse response: the direct sound (a laptop's speaker is near its mic: it
    carries twice the reverb's energy), then reverb decaying 60 dB in ``rt60_s``."""
    n = int(rt60_s * RATE)
    ir = np.random.default_rng(1).normal(0, 1, n) * np.exp(-6.9 * np.arange(n) / n)
    ir[0] = np.sqrt(2 * np.sum(ir[1:] ** 2))
    return (ir / np.sqrt(np.sum(ir**2))).astype(np.float32)


def run(
    reply: np.ndarray,
    user: np.ndarray | None,
    echo: float = ECHO,
    rt60_s: float = 0.0,
    user_at: int = USER_AT,
    reported: bool = True,
    delays: tuple[int, int] = DELAYS,
) -> tuple[np.ndarray, np.ndarray]:
    """The raw mic and the canceller's output for the scenario. ``reported``: the client
    says where each reply starts playing (``played_ms: 0``); otherwise (a Realtime client)
    it plays each reply as it arrives."""
    played = resample(reply, OUT_RATE, RATE)
    if rt60_s:
        played = np.convolve(played, room(rt60_s))[: played.size].astype(np.float32)
    n = START[1] + delays[1] + played.size + RATE
    mic = np.random.default_rng(0).normal(0, 10 ** (-50 / 20), n).astype(np.float32)
    first = played[: CUT - START[0]]  # the client stops the first reply at the cut
    mic[START[0] + delays[0] : START[0] + delays[0] + first.size] += echo * first
    mic[START[1] + delays[1] : START[1] + delays[1] + played.size] += echo * played
    if user is not None:
        mic[user_at : user_at + user.size] += user
    pcm = (np.clip(mic, -1, 1) * 32767).round().astype("<i2")
    sent = (reply * 32767).astype("<i2").tobytes()
    ec = EchoCanceller()
    out = []
    for i in range(0, n - FRAME + 1, FRAME):
        for number, start in enumerate(START, 1):
            if i == start - (RATE // 5 if reported else 0):  # sent at once, before it plays
                for j in range(0, len(sent), 9600):
                    ec.add(number, sent[j : j + 9600], OUT_RATE, i)
            if i == start and reported:
                ec.anchor(number, i)
        if i == CUT:
            ec.cut(1, i)
        out.append(np.frombuffer(ec.process(pcm[i : i + FRAME].tobytes(), i), dtype="<i2"))
    return mic, np.concatenate(out).astype(np.float32) / 32768


def onsets(vad: SileroVAD, audio: np.ndarray) -> list[int]:
    """Speech onsets (ms) the VAD finds in the audio, fed as a client's 20 ms frames."""
    stream = vad.stream()
    events = []
    for i in range(0, audio.size, FRAME):
        events += stream.feed(audio[i : i + FRAME])
    return [e.t_ms for e in events if e.kind == "start"]


@pytest.mark.parametrize("rt60_s", [0.0, 0.4], ids=["dry", "reverb"])
def test_the_replies_echo_leaves_no_speech(reply: np.ndarray, rt60_s: float):
    vad = SileroVAD()
    mic, out = run(reply, None, rt60_s=rt60_s)
    assert onsets(vad, mic)  # the raw mic does hear the reply as speech
    assert onsets(vad, out) == []
    played = slice(START[1] + RATE, START[1] + 4 * RATE)  # the second reply, once adapted
    erle = 10 * np.log10(np.mean(mic[played] ** 2) / np.mean(out[played] ** 2))
    assert erle > 15


@pytest.mark.parametrize("delay_ms", [30, 60, 120])
def test_the_echo_of_replies_never_reported_playing_leaves_no_speech(
    reply: np.ndarray, delay_ms: int
):
    """A client that never sends ``response.audio.played`` (every OpenAI Realtime client):
    the reply plays as it arrives, its echo at -6 dB with room noise. Until the coupling was
    measured the mic passed through raw, and the first second of the echo was speech: from
    outside 3 of 4 such /v1/ws replies (60-120 ms late) and 1 of 4 Realtime ones were
    cancelled by their own echo, transcribed ("The quake round four.")."""
    mic, out = run(reply, None, reported=False, delays=(delay_ms * 16, delay_ms * 16))
    vad = SileroVAD()
    assert onsets(vad, mic)
    assert onsets(vad, out) == []


def test_the_user_over_the_echo_is_still_speech(reply: np.ndarray):
    user = speak("What time is it in Seoul right now?")
    _, out = run(reply, user)
    found = onsets(SileroVAD(), out)
    assert len(found) == 1
    assert USER_AT / 16 - 350 <= found[0] <= (USER_AT + user.size) / 16
    span = slice(USER_AT, USER_AT + user.size)
    kept = 10 * np.log10(np.mean(out[span] ** 2) / np.mean(user**2))
    assert kept > -10  # attenuated by double-talk suppression, not removed


def test_headphones_pass_the_user_through_untouched(reply: np.ndarray):
    """No echo path (headphones): once measured, the mic is not dulled by AEC3's suppressor,
    even while the user talks over the reply (which correlates with it by chance)."""
    user = speak("Wait, stop please.")
    mic, out = run(reply, user, echo=0.0)
    span = slice(USER_AT - RATE, USER_AT + user.size)
    sent = (np.clip(mic[span], -1, 1) * 32767).round() / 32768  # as the client sent it
    assert np.array_equal(out[span], sent.astype(np.float32))


FIRST_WORDS = START[0] + RATE * 3 // 10  # 300 ms into the session's first reply


# A known limit, measured (bench.voice_turns first_stops: over speakers 3 of 5 heard):
# with an echo path, a one-syllable "Wait." in the first second is lost or kept depending
# on a few ms of the reply's alignment. espeak-ng starts a text ~9 ms differently after a
# text that ended with a pause, so the same test passes or fails with the tests run before.
LOST_AT_TIMES = pytest.mark.xfail(
    reason="a short stop over the first second of echo is heard in some alignments only",
    strict=False,
)


@pytest.mark.parametrize(
    ("phrase", "echo"),
    [
        ("Wait.", 0.0),
        pytest.param("Wait.", ECHO, marks=LOST_AT_TIMES),
        ("Hold on.", 0.0),
        ("Hold on.", ECHO),
    ],
    ids=["Wait.-headphones", "Wait.-speakers", "Hold on.-headphones", "Hold on.-speakers"],
)
def test_a_stop_at_the_start_of_the_first_reply_is_speech(
    reply: np.ndarray, echo: float, phrase: str
):
    """Said 300 ms into the session's first reply, before the coupling is measured: with no
    echo path AEC3's suppressor took the word whole (no onset at all), with one AEC3's
    unconverged start did. The VAD hears it either way (once, where it was said: the
    reply's echo around it stays silent), and with no echo path it is the mic untouched
    ("Hold on." correlates with the reply's voice by chance in the first measurement: one
    high measurement is not an echo path)."""
    user = speak(phrase)
    mic, out = run(reply, user, echo=echo, user_at=FIRST_WORDS)
    found = onsets(SileroVAD(), out)
    said = (FIRST_WORDS / 16, (FIRST_WORDS + user.size) / 16)
    assert len(found) == 1 and said[0] - 350 <= found[0] <= said[1], found
    span = slice(FIRST_WORDS, FIRST_WORDS + user.size)
    kept = 10 * np.log10(np.mean(out[span] ** 2) / np.mean(user**2))
    assert kept > -10, kept
    if not echo:
        sent = (np.clip(mic[: START[0] + RATE], -1, 1) * 32767).round() / 32768
        assert np.array_equal(out[: START[0] + RATE], sent.astype(np.float32))


@pytest.mark.parametrize("kind", ["commit", "clear"])
def test_the_held_start_goes_to_a_commit_and_not_past_a_clear(reply: np.ndarray, kind: str):
    """The mic held over the first reply's start: a commit (``take_held``) ends the
    utterance with it, a clear (``drop_held``) forgets it; either way none of it comes out
    later and the mic after it flows in order."""
    mic = np.random.default_rng(0).normal(0, 10 ** (-50 / 20), 3 * RATE).astype(np.float32)
    pcm = (mic * 32767).round().astype("<i2")
    ec = EchoCanceller()
    ec.add(1, (reply * 32767).astype("<i2").tobytes(), OUT_RATE, 0)
    ec.anchor(1, 0)
    out, at = [], RATE * 4 // 10  # the commit or clear comes 0.4 s into the reply
    for i in range(0, pcm.size, FRAME):
        if i == at:
            assert b"".join(out) == b""  # held: not measured yet
            if kind == "commit":
                taken = ec.take_held()
                assert len(taken) == at * 2  # all of it, and AEC3 ran over it
            else:
                ec.drop_held()
        out.append(ec.process(pcm[i : i + FRAME].tobytes(), i))
    after = np.frombuffer(b"".join(out), dtype="<i2")
    # headphones: measured as no echo, the mic after the commit or clear is untouched
    assert after.size == pcm.size - at
    assert np.array_equal(after, pcm[at:])
