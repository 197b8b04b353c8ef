"""DesktopMatePlus v1 clients, unchanged, against the whole server: the Python mirror of
desktop-homunculus's bridge (tests/dmp_client.py) over ws /v1/chat/stream and its REST,
with real espeak-ng speech, the real graph and store, the fake OpenAI server as the LLM."""

from __future__ import annotations

import asyncio
import base64
import io
import wave
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
from openai import AsyncOpenAI

from tests.dmp_client import BridgeConfig, BridgeRest, DmpClient, wav_info
from tests.fakes.openai_server import FakeOpenAI
from tests.server_harness import ServerThread

Factory = Callable[..., ServerThread]
DMP = {"tts_provider": "espeak", "tts_fallback": False, "persona_aliases": "yuri=emma"}


def config(srv: ServerThread, **over: Any) -> BridgeConfig:
    base = BridgeConfig(ws_url=f"ws://127.0.0.1:{srv.port}/v1/chat/stream", rest_url=srv.url)
    for k, v in over.items():
        setattr(base, k, v)
    return base


async def connected(srv: ServerThread, **over: Any) -> DmpClient:
    client = await DmpClient.open(config(srv, **over))
    await client.wait_for("authorize_success")
    return client


async def test_text_and_voice_turn_as_the_bridge_sees_it(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv = server_factory(llm, **DMP)
    client = await connected(srv)
    ok = client.events[0]
    assert list(ok)[:4] == ["type", "id", "timestamp", "connection_id"]
    assert ok["id"] is None and ok["timestamp"] is None and len(ok["connection_id"]) == 36

    llm.queue_reply(tokens=["Hello there. ", "It is a fine day ", "for kites!"])
    turn = await client.turn("Hi, I am Dana.")
    sid = turn.start["session_id"]
    assert turn.start["turn_id"] and sid
    assert turn.tokens == "Hello there. It is a fine day for kites!"
    assert turn.end["content"] == "Hello there. It is a fine day for kites!"
    assert (turn.end["turn_id"], turn.end["session_id"]) == (turn.start["turn_id"], sid)
    assert "status" not in turn.end
    # one whole WAV per sentence, in order, every one before stream_end
    chunks = turn.chunks
    assert [c["sequence"] for c in chunks] == list(range(len(chunks))) and len(chunks) == 2
    assert [c["text"] for c in chunks] == ["Hello there.", "It is a fine day for kites!"]
    for c in chunks:
        assert list(c)[:6] == ["type", "sequence", "text", "audio_base64", "emotion", "keyframes"]
        rate, channels, seconds = wav_info(c["audio_base64"])
        assert (rate, channels) == (24_000, 1) and seconds > 0.3
        total = sum(k["duration"] for k in c["keyframes"])
        assert abs(total - seconds) <= 0.02
        assert all(isinstance(k["targets"], dict) for k in c["keyframes"])
    # the persona was emma (agent "yuri" through PERSONA_ALIASES)
    prompt = llm.chat_requests(mem0=False)[-1]["body"]["messages"][0]["content"]
    assert "Emma" in prompt or "emma" in prompt

    # the conversation is an ordinary session of ours, and the bridge's REST sees it
    rest = BridgeRest(client.config)
    listed = (await rest.sessions()).json()["sessions"]
    assert [s["session_id"] for s in listed] == [sid]
    assert set(listed[0]) == {
        "session_id",
        "user_id",
        "agent_id",
        "created_at",
        "updated_at",
        "metadata",
    }
    assert (listed[0]["user_id"], listed[0]["agent_id"]) == ("default", "yuri")
    history = (await rest.history(sid)).json()
    assert history["session_id"] == sid
    assert [(m["role"], m["content"]) for m in history["messages"]] == [
        ("user", "Hi, I am Dana."),
        ("assistant", "Hello there. It is a fine day for kites!"),
    ]
    ours = await rest.http.get("/v1/sessions", headers={"Authorization": "Bearer default"})
    assert sid in [s["id"] for s in ours.json()["sessions"]]
    await rest.aclose()

    # a long first sentence: its first 2 words are spoken at once (TTS_FIRST_CHUNK_WORDS
    # unset: espeak-ng's own 2), with no end pause (espeak's ~300 ms would be a gap
    # mid-sentence)
    words = "Sentence number one is here to be spoken aloud."
    llm.queue_reply(tokens=[w + " " for w in words.split()])
    turn = await client.turn("Talk to me.")
    texts = [c["text"] for c in turn.chunks]
    assert texts == ["Sentence number", "one is here to be spoken aloud."]
    with wave.open(io.BytesIO(base64.b64decode(turn.chunks[0]["audio_base64"]))) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert np.abs(pcm[-24_000 * 100 // 1000 :]).max() > 300  # speech in its last 100 ms
    await client.close()


async def test_resume_a_session_and_switch_to_a_new_one(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv = server_factory(llm, **DMP, default_output_audio="none")
    client = await connected(srv)
    llm.queue_reply("Nice to meet you, Bob.")
    first = await client.turn("My name is Bob and I like kites.")
    sid = first.start["session_id"]
    await client.close()

    again = await connected(srv)  # reconnect, name the conversation: history is there
    llm.queue_reply("You like kites.")
    second = await again.turn("What do I like?", session_id=sid)
    assert second.start["session_id"] == sid
    contents = [m["content"] for m in llm.chat_requests(mem0=False)[-1]["body"]["messages"]]
    assert "My name is Bob and I like kites." in contents
    # no session_id: the UI's "new chat", a new thread without that history
    llm.queue_reply("Hello!")
    third = await again.turn("Hi again")
    assert third.start["session_id"] != sid
    contents = [m["content"] for m in llm.chat_requests(mem0=False)[-1]["body"]["messages"]]
    assert "My name is Bob and I like kites." not in contents
    rest = BridgeRest(again.config)
    listed = {s["session_id"] for s in (await rest.sessions()).json()["sessions"]}
    assert listed == {sid, third.start["session_id"]}
    await rest.aclose()
    await again.close()


async def test_interrupt_busy_and_nothing_to_interrupt(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv = server_factory(llm, **DMP, default_output_audio="none")
    client = await connected(srv)
    llm.queue_reply(tokens=[f"w{i} " for i in range(300)], token_ms=20)
    start = len(client.events)
    await client.send_message("Tell me a long story")
    begin = await client.wait_for("stream_start", after=start)
    await client.wait_for("stream_token", after=start)
    # a second message while the turn runs: 4002, the turn goes on
    await client.send_message("And another thing")
    busy = await client.wait_for("error", after=start, code=4002)
    assert busy["error"].startswith("Another turn is already active")
    await client.interrupt()
    end = await client.wait_for("stream_end", after=start)
    assert end["status"] == "interrupted" and end["turn_id"] == begin["turn_id"]
    stopped = await client.wait_for("error", after=start, code=4003)
    assert client.events.index(end) < client.events.index(stopped)
    assert len(end["content"].split()) < 300
    await client.interrupt()
    nothing = await client.wait_for("error", after=client.events.index(stopped) + 1)
    assert nothing["code"] == 4004
    # stored as interrupted, with what was sent
    rest = BridgeRest(client.config)
    msgs = (await rest.history(begin["session_id"])).json()["messages"]
    assert msgs[0]["content"] == "Tell me a long story"
    assert msgs[-1]["content"] == end["content"]
    # and the socket works on
    llm.queue_reply("Short one.")
    assert (
        await client.turn("Short, please", session_id=begin["session_id"])
    ).tokens == "Short one."
    await rest.aclose()
    await client.close()


async def test_interrupt_with_audio_does_not_wait_for_a_playback_report(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    """DMP clients never report playback: an interrupted spoken turn keeps what was sent,
    and its 4003 and the next turn come at once, not after PLAYED_REPORT_WAIT_MS (here a
    minute, so waiting for a report that never comes fails the test)."""
    srv = server_factory(llm, **DMP, played_report_wait_ms=60_000)
    client = await connected(srv)
    llm.queue_reply(tokens=[f"Word number {i} is here. " for i in range(60)], token_ms=20)
    start = len(client.events)
    await client.send_message("Tell me a long story")
    sid = (await client.wait_for("stream_start", after=start))["session_id"]
    await client.wait_for("tts_chunk", after=start)
    await client.interrupt()
    llm.queue_reply("Right away.")
    await client.send_message("Something else", sid)  # as the user types on at once
    end = await client.wait_for("stream_end", after=start, status="interrupted")
    await client.wait_for("error", after=start, code=4003)
    nxt = await client.wait_for("stream_end", after=client.events.index(end) + 1)
    assert nxt["content"] == "Right away." and "status" not in nxt
    rest = BridgeRest(client.config)
    msgs = (await rest.history(sid)).json()["messages"]
    assert [m["content"] for m in msgs][1:] == [end["content"], "Something else", "Right away."]
    await rest.aclose()
    await client.close()


async def test_users_are_isolated(server_factory: Factory, llm: FakeOpenAI) -> None:
    srv = server_factory(llm, **DMP, default_output_audio="none")
    alice = await connected(srv, user_id="alice")
    llm.queue_reply("Secret noted.")
    sid = (await alice.turn("My secret is 42.")).start["session_id"]
    mallory = await connected(srv, user_id="mallory")
    start = len(mallory.events)
    await mallory.send_message("What was the secret?", session_id=sid)
    refused = await mallory.wait_for("error", after=start)
    assert refused["error"] == "No such session for this user."
    assert not mallory.of_type("stream_start")
    # the socket stays open and mallory's own chat works, in a session of their own
    llm.queue_reply("Hi Mallory.")
    own = await mallory.turn("Hello")
    assert own.start["session_id"] != sid
    # a chat_message naming another user on this connection is refused too
    start = len(mallory.events)
    await mallory.send(
        {"type": "chat_message", "content": "x", "user_id": "alice", "agent_id": "yuri"}
    )
    assert "does not match" in (await mallory.wait_for("error", after=start))["error"]
    rest = BridgeRest(mallory.config)
    assert (await rest.history(sid)).status_code == 404
    assert (await rest.delete(sid)).status_code == 404
    assert sid not in {s["session_id"] for s in (await rest.sessions()).json()["sessions"]}
    await rest.aclose()
    for c in (alice, mallory):
        await c.close()


async def test_bad_input_gets_an_error_and_the_socket_stays_open(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv = server_factory(llm, **DMP, default_output_audio="none")
    client = await DmpClient.open(config(srv), authorize=False)
    await client.send_message("before authorize")
    assert (await client.wait_for("error"))["error"] == "Authentication required"
    await client.send({"type": "authorize", "token": "t", "user_id": "default", "agent_id": "yuri"})
    await client.wait_for("authorize_success")
    bad: list[tuple[str | bytes, str]] = [
        ("{not json", "Invalid JSON format"),
        ('{"content": "no type"}', "Missing message type"),
        ('{"type": "dance"}', "Unsupported message type: dance"),
        ('{"type": "hitl_response", "decisions": []}', "Unsupported message type: hitl_response"),
        (
            '{"type": "chat_message", "content": "hi", "user_id": "default"}',
            "Invalid chat message format",
        ),
        (
            '{"type": "chat_message", "content": 5, "user_id": "default", "agent_id": "yuri"}',
            "Invalid chat message format",
        ),
        (b"\x00\x01", "Binary frames are not part of this protocol."),
    ]
    for frame, expected in bad:
        start = len(client.events)
        await client.conn.send(frame)
        err = await client.wait_for("error", after=start)
        assert err["error"].startswith(expected), (frame, err)
        assert list(err)[:5] == ["type", "id", "timestamp", "error", "code"]
    start = len(client.events)
    await client.send_message("x", images=["http://example.com/cat.png"])
    assert "data: URLs" in (await client.wait_for("error", after=start))["error"]
    start = len(client.events)
    await client.send_message("y" * (srv.settings.max_input_chars + 1))
    assert "limited to" in (await client.wait_for("error", after=start))["error"]
    llm.queue_reply("Still here.")
    assert (await client.turn("Are you there?")).tokens == "Still here."
    assert not client.closed.done()
    await client.close()


async def test_token_mode_the_token_decides(server_factory: Factory, llm: FakeOpenAI) -> None:
    srv = server_factory(llm, **DMP, default_output_audio="none", auth_tokens="tok-a:alice")
    wrong = await DmpClient.open(config(srv, token="nope", user_id="alice"))
    err = await wrong.wait_for("authorize_error")
    assert list(err) == ["type", "id", "timestamp", "error", "_t"]
    assert (await wrong.closed)[0] == 4001
    impostor = await DmpClient.open(config(srv, token="tok-a", user_id="bob"))
    await impostor.wait_for("authorize_error")
    assert (await impostor.closed)[0] == 4001
    client = await connected(srv, token="tok-a", user_id="alice")
    llm.queue_reply("Hi Alice.")
    sid = (await client.turn("Hello")).start["session_id"]
    start = len(client.events)
    await client.send(
        {"type": "chat_message", "content": "x", "user_id": "bob", "agent_id": "yuri"}
    )
    assert "does not match" in (await client.wait_for("error", after=start))["error"]
    # REST: no token 401, someone else's user_id 403, the token's own user 200
    no_token = BridgeRest(config(srv, user_id="alice"))
    assert (await no_token.sessions()).status_code == 401
    other = BridgeRest(config(srv, user_id="bob"), headers={"Authorization": "Bearer tok-a"})
    assert (await other.sessions()).status_code == 403
    mine = BridgeRest(config(srv, user_id="alice"), headers={"Authorization": "Bearer tok-a"})
    assert [s["session_id"] for s in (await mine.sessions()).json()["sessions"]] == [sid]
    for r in (no_token, other, mine):
        await r.aclose()
    await client.close()


async def test_heartbeat_closes_a_silent_client_with_4000(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv = server_factory(llm, **DMP, dmp_ping_interval_s=0.3, dmp_pong_timeout_s=1.0)
    silent = await DmpClient.open(config(srv), answer_pings=False)
    alive = await DmpClient.open(config(srv))
    ping = await silent.wait_for("ping")
    assert list(ping) == ["type", "id", "timestamp", "_t"]
    code, _ = await asyncio.wait_for(silent.closed, 10)
    assert code == 4000
    await asyncio.sleep(1.0)
    assert len(alive.of_type("ping")) >= 2 and not alive.closed.done()
    await alive.close()


async def test_images_reach_the_persona(server_factory: Factory, llm: FakeOpenAI) -> None:
    from tests.pipelines.test_vision_pipeline import ui_jpeg

    srv = server_factory(
        llm,
        **DMP,
        default_output_audio="none",
        vlm_base_url=llm.base_url,
        vlm_api_key="k",
        vlm_model="fake-vlm",
        vlm_min_interval_s=0.0,
    )
    client = await connected(srv)
    llm.queue_reply("A spreadsheet titled Q3 budget with a bar chart.")  # the VLM's answer
    llm.queue_reply("Budget season!")
    url = "data:image/jpeg;base64," + base64.b64encode(ui_jpeg(4)).decode()
    turn = await client.turn("What do you think of this?", images=[url])
    assert turn.tokens == "Budget season!"
    persona = [r for r in llm.chat_requests(mem0=False) if not r["images"]][-1]
    assert "Q3 budget" in persona["body"]["messages"][0]["content"]
    await client.close()


async def test_tts_disabled_still_gives_chunks_with_keyframes(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv = server_factory(llm, **DMP)
    client = await connected(srv)
    llm.queue_reply(tokens=["One. ", "Two!"])
    start = len(client.events)
    await client.send_message("Count", tts_enabled=False)
    end = await client.wait_for("stream_end", after=start)
    chunks = client.of_type("tts_chunk", after=start)
    assert [(c["text"], c["audio_base64"]) for c in chunks] == [("One.", None), ("Two!", None)]
    assert all(c["keyframes"] for c in chunks)
    assert end["content"] == "One. Two!"
    await client.close()


async def test_rest_rename_delete_and_speak(server_factory: Factory, llm: FakeOpenAI) -> None:
    srv = server_factory(llm, **DMP, default_output_audio="none")
    client = await connected(srv)
    llm.queue_reply("Hi.")
    sid = (await client.turn("Hello")).start["session_id"]
    rest = BridgeRest(client.config)
    assert (await rest.rename(sid, "Kite talk")).json()["success"] is True
    # their server's body shape works too
    r = await rest.http.patch(
        f"/v1/stm/sessions/{sid}/metadata",
        json={"session_id": sid, "metadata": {"pinned": True}},
        params={"user_id": "default"},
    )
    assert r.status_code == 200
    listed = (await rest.sessions()).json()["sessions"]
    assert listed[0]["metadata"] == {"name": "Kite talk", "pinned": True}
    assert (await rest.delete(sid)).status_code == 409  # still open in the client
    await client.close()
    for _ in range(50):
        r = await rest.delete(sid)
        if r.status_code != 409:
            break
        await asyncio.sleep(0.1)
    assert r.json() == {"success": True, "message": "Session deleted successfully"}
    assert (await rest.history(sid)).status_code == 404
    spoken = await rest.http.post("/v1/tts/speak", json={"text": "Hello there."})
    rate, channels, seconds = wav_info(spoken.json()["audio_base64"])
    assert (rate, channels) == (24_000, 1) and seconds > 0.3
    assert (await rest.http.post("/v1/tts/speak", json={"text": ""})).status_code == 422
    voices = (await rest.http.get("/v1/tts/voices")).json()
    assert voices["voices"]
    await rest.aclose()


async def test_reminders_arrive_between_turns_on_both_foreign_protocols(
    server_factory: Factory, llm: FakeOpenAI
) -> None:
    srv = server_factory(llm, **DMP, default_output_audio="none", reminder_check_s=60.0)
    http = httpx.AsyncClient(base_url=srv.url, headers={"Authorization": "Bearer default"})
    client = await connected(srv)
    llm.queue_reply("Hello.")
    await client.turn("Hi")  # the session is open from the first chat_message on
    # a reminder that falls due while a slow reply streams waits for its stream_end
    llm.queue_reply(tokens=["One, ", "two, ", "three, ", "four."], token_ms=250)
    start = len(client.events)
    await client.send_message("Count to four")
    await client.wait_for("stream_token", after=start)
    made = (await http.post("/v1/reminders", json={"text": "Stretch!", "in_seconds": 0.1})).json()
    proactive = await client.wait_for("stream_start", after=start, proactive=True)
    types = [e["type"] for e in client.events[start:]]
    first_end = types.index("stream_end")
    assert client.events[start:].index(proactive) > first_end  # never inside the reply
    end = await client.wait_for("stream_end", after=start + first_end + 1)
    assert end["content"] == "Stretch!" and end["turn_id"] == proactive["turn_id"]
    chunk = client.of_type("tts_chunk", after=start + first_end + 1)[0]
    assert (chunk["sequence"], chunk["text"]) == (0, "Stretch!")
    await client.close()

    # OpenAI Realtime (the SDK): an assistant message item
    async with AsyncOpenAI(base_url=f"{srv.url}/v1", api_key="default").realtime.connect(
        model="emma"
    ) as conn:
        async with asyncio.timeout(10):
            while (await conn.recv()).type != "session.created":
                pass
            again = await http.post("/v1/reminders", json={"text": "Water!", "in_seconds": 0.1})
            assert again.status_code == 201
            while (ev := await conn.recv()).type != "conversation.item.done":
                pass
    assert ev.item.role == "assistant" and ev.item.content[0].text == "Water!"
    # marked delivered once written, though both clients left right after (poll: the
    # mark follows the write)
    want = {made["id"], again.json()["id"]}
    async with asyncio.timeout(10):
        while True:
            listed = (await http.get("/v1/reminders", params={"status": "delivered"})).json()
            if {r["id"] for r in listed["reminders"]} >= want:
                break
            await asyncio.sleep(0.05)
    await http.aclose()
