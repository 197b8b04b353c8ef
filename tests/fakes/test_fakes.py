"""The fakes speak the real wire formats: proven with the real clients, not by reading JSON.

openai SDK (sync and async), langchain-openai and mem0 run unchanged against FakeOpenAI;
httpx with msgpack/JSON/multipart bodies against FakeFish.
"""

from __future__ import annotations

import base64
import io
import json
import os
import statistics
import sys
import threading
import time
import wave
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import ormsgpack
import pytest

from tests.fakes.fish_server import FakeFish, sine_pcm16, wav_bytes
from tests.fakes.openai_server import (
    FakeOpenAI,
    Reply,
    classify_mem0,
    hashed_embedding,
    tokenize,
)

# ---- helpers ---------------------------------------------------------------------------------


def sync_client(fake: FakeOpenAI, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=fake.base_url, api_key="test", **kw)


def async_client(fake: FakeOpenAI, **kw: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=fake.base_url, api_key="test", **kw)


def dominant_hz(pcm: bytes, rate: int) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def wait_until(predicate: Any, timeout: float = 2.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.005)
    return bool(predicate())


# ---- FakeOpenAI: chat ------------------------------------------------------------------------


def test_unscripted_reply_echoes_last_user_message(fake_openai: FakeOpenAI) -> None:
    client = sync_client(fake_openai)
    out = client.chat.completions.create(
        model="m",
        messages=[
            {"role": "system", "content": "be nice"},
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "Hi there"},
        ],
    )
    assert out.choices[0].message.content == "You said: Hi there."
    assert out.choices[0].finish_reason == "stop"
    assert out.usage is not None and out.usage.completion_tokens == 4  # "You said: Hi there."
    assert out.usage.total_tokens == out.usage.prompt_tokens + 4
    (rec,) = fake_openai.requests.snapshot()
    assert rec["kind"] == "chat" and rec["path"] == "/v1/chat/completions"
    assert rec["body"]["messages"][-1]["content"] == "Hi there" and rec["mem0"] is None


def test_scripted_replies_are_fifo_then_default_fn(fake_openai: FakeOpenAI) -> None:
    client = sync_client(fake_openai)
    fake_openai.queue_reply("One.")
    fake_openai.queue_reply(tokens=["T", "wo", "."])
    fake_openai.set_default(lambda body: f"n={len(body['messages'])}")

    def ask() -> str | None:
        msgs = [{"role": "user", "content": "x"}]
        return client.chat.completions.create(model="m", messages=msgs).choices[0].message.content

    assert [ask(), ask(), ask()] == ["One.", "Two.", "n=1"]
    assert fake_openai.pending_replies == 0


def test_sync_streaming_role_tokens_finish_usage_done(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_reply("Hello big  world.")
    stream = sync_client(fake_openai).chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [
        c.choices[0].delta.content for c in chunks[1:] if c.choices and c.choices[0].delta.content
    ]
    assert deltas == ["Hello ", "big  ", "world."]
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop" and set(finishes[:-1]) == {None}
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3
    rec = fake_openai.chat_requests()[-1]
    # the server marks the record after its last write, which the client may read first
    assert rec["stream"] and wait_until(lambda: rec["completed"]) and rec["tokens_sent"] == 3


def test_stream_without_include_usage_has_no_usage_chunk(fake_openai: FakeOpenAI) -> None:
    stream = sync_client(fake_openai).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "yo"}], stream=True
    )
    chunks = list(stream)
    assert all(c.choices for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == "You said: yo."


async def test_async_tool_calls_streaming_and_not(fake_openai: FakeOpenAI) -> None:
    client = async_client(fake_openai)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    call = {"name": "get_weather", "arguments": {"city": "Seoul"}}
    fake_openai.queue_reply(tool_calls=[call])
    fake_openai.queue_reply("Let me check.", tool_calls=[{**call, "id": "call_x"}])
    msgs: Any = [{"role": "user", "content": "weather?"}]

    out = await client.chat.completions.create(model="m", messages=msgs, tools=tools)
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    assert choice.message.tool_calls is not None
    (tc,) = choice.message.tool_calls
    assert tc.function.name == "get_weather" and json.loads(tc.function.arguments) == {
        "city": "Seoul"
    }

    stream = await client.chat.completions.create(
        model="m", messages=msgs, tools=tools, stream=True
    )
    text, calls, finish = "", {}, None
    async for chunk in stream:
        delta = chunk.choices[0].delta
        text += delta.content or ""
        for d in delta.tool_calls or []:
            entry = calls.setdefault(d.index, {"id": None, "name": "", "args": ""})
            entry["id"] = d.id or entry["id"]
            if d.function is not None:
                entry["name"] += d.function.name or ""
                entry["args"] += d.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert text == "Let me check." and finish == "tool_calls"
    assert calls == {0: {"id": "call_x", "name": "get_weather", "args": '{"city": "Seoul"}'}}


def test_forced_tool_choice_and_json_modes_default_to_valid_output(fake_openai: FakeOpenAI) -> None:
    client = sync_client(fake_openai)
    params = {
        "type": "object",
        "properties": {
            "mood": {"type": "string", "enum": ["happy", "sad"]},
            "n": {"type": "integer"},
        },
        "required": ["mood", "n"],
    }
    tools: Any = [{"type": "function", "function": {"name": "rate", "parameters": params}}]
    out = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        tools=tools,
        tool_choice={"type": "function", "function": {"name": "rate"}},
    )
    (tc,) = out.choices[0].message.tool_calls or []
    assert json.loads(tc.function.arguments) == {"mood": "happy", "n": 0}

    schema_fmt: Any = {"type": "json_schema", "json_schema": {"name": "r", "schema": params}}
    out = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "hi"}], response_format=schema_fmt
    )
    assert json.loads(out.choices[0].message.content or "") == {"mood": "happy", "n": 0}

    fake_openai.queue_reply('{"scripted": true}')
    out = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        response_format={"type": "json_object"},
    )
    assert out.choices[0].message.content == '{"scripted": true}'


def test_image_parts_are_accepted_and_recorded(fake_openai: FakeOpenAI) -> None:
    url = "data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8fakejpeg").decode()
    out = sync_client(fake_openai).chat.completions.create(
        model="vlm",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is on screen"},
                    {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
                ],
            }
        ],
    )
    assert out.choices[0].message.content == "You said: What is on screen. I see 1 image."
    assert fake_openai.chat_requests()[-1]["images"] == [url]


def test_default_fn_answers_per_image_and_may_fail(fake_openai: FakeOpenAI) -> None:
    """A test can answer per screen: the default sees the request's decoded images and may
    return a Reply (here a scripted failure for an unknown screen)."""
    screens = {b"\xff\xd8menu": "the menu", b"\xff\xd8cart": "the cart"}

    def by_image(body: dict[str, Any]) -> Any:
        images = FakeOpenAI.request_images(body)
        name = screens.get(images[0]) if images else None
        return name or Reply(fail_status=422)

    fake_openai.set_default(by_image)

    def ask(image: bytes) -> Any:
        url = "data:image/jpeg;base64," + base64.b64encode(image).decode()
        return sync_client(fake_openai, max_retries=0).chat.completions.create(
            model="vlm",
            messages=[
                {"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}
            ],
        )

    assert ask(b"\xff\xd8cart").choices[0].message.content == "the cart"
    assert ask(b"\xff\xd8menu").choices[0].message.content == "the menu"
    with pytest.raises(openai.UnprocessableEntityError):
        ask(b"\xff\xd8other")
    assert [r["status"] for r in fake_openai.chat_requests()] == [200, 200, 422]


def test_fail_status_once_then_sdk_retry_succeeds(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_reply(fail_status=503)
    fake_openai.queue_reply("Recovered.")
    msgs: Any = [{"role": "user", "content": "x"}]
    out = sync_client(fake_openai, max_retries=1).chat.completions.create(model="m", messages=msgs)
    assert out.choices[0].message.content == "Recovered."
    first, retry = fake_openai.chat_requests()
    assert [first["status"], retry["status"]] == [503, 200]
    assert retry["t"] >= first["t_done"]

    fake_openai.queue_reply(fail_status=500)
    with pytest.raises(openai.InternalServerError) as err:
        sync_client(fake_openai, max_retries=0).chat.completions.create(model="m", messages=msgs)
    assert err.value.status_code == 500
    assert isinstance(err.value.body, dict) and err.value.body["type"] == "server_error"


def test_max_tokens_truncates_with_finish_length(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_reply(tokens=FakeOpenAI.default_tokens(10))
    out = sync_client(fake_openai).chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], max_tokens=4
    )
    assert out.choices[0].finish_reason == "length"
    assert out.choices[0].message.content == "".join(FakeOpenAI.default_tokens(10)[:4])


def test_default_tokens_and_tokenize() -> None:
    tokens = FakeOpenAI.default_tokens(17)
    assert len(tokens) == 17 and tokens[0] == "The " and tokens[7].endswith(". ")
    assert "".join(tokens).endswith(".") and tokenize("".join(tokens)) == tokens
    assert "".join(tokenize("  lead and  trail ")) == "  lead and  trail "
    assert tokenize("") == []


async def test_langchain_chat_openai_astream_yields_scripted_tokens(
    fake_openai: FakeOpenAI,
) -> None:
    from langchain_openai import ChatOpenAI

    tokens = ["Hi", ", ", "I am ", "이서아", "."]
    fake_openai.queue_reply(tokens=tokens)
    llm = ChatOpenAI(
        model="fake-model", base_url=fake_openai.base_url, api_key="test", stream_usage=True
    )
    got: list[str] = []
    usage = None
    async for chunk in llm.astream("hello"):
        if chunk.content:
            got.append(str(chunk.content))
        usage = chunk.usage_metadata or usage
    assert got == tokens
    assert usage is not None and usage["output_tokens"] == len(tokens)


def test_ttft_and_token_delay_are_honoured() -> None:
    with FakeOpenAI(ttft_ms=150, token_ms=20) as fake:
        fake.queue_reply(tokens=["a ", "b ", "c ", "d"])
        client = sync_client(fake)
        t0 = time.monotonic()
        stream = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}], stream=True
        )
        times = []
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                times.append(time.monotonic() - t0)
        assert len(times) == 4
        assert times[0] >= 0.150  # nothing can arrive before the server sent it
        # the gaps between tokens are the server's to keep: a client that was descheduled
        # may read several at once, so they are checked on the server's own clock
        rec = fake.chat_requests()[-1]
        # the server stamps t_done after its last chunk was read: the client may get there first
        deadline = time.monotonic() + 5
        while rec["t_done"] is None and time.monotonic() < deadline:
            time.sleep(0.01)
            rec = fake.chat_requests()[-1]
        assert rec["t_first_token"] - rec["t"] >= 0.150
        assert rec["t_done"] - rec["t_first_token"] >= 3 * 0.020

        # per-reply override, non-streaming sleeps the same total
        fake.queue_reply("one two", ttft_ms=0, token_ms=100)
        t0 = time.monotonic()
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
        assert time.monotonic() - t0 >= 0.1  # a lower bound only: load can only add


def test_nodelay_on_accepted_sockets_and_no_delayed_ack_stalls(fake_openai: FakeOpenAI) -> None:
    with httpx.Client(base_url=fake_openai.root_url) as http:
        lat = []
        for i in range(30):
            t0 = time.perf_counter()
            r = http.post(
                "/v1/chat/completions", json={"messages": [{"role": "user", "content": str(i)}]}
            )
            lat.append(time.perf_counter() - t0)
            assert r.status_code == 200
    assert fake_openai.nodelay and all(fake_openai.nodelay)
    assert len(fake_openai.nodelay) == 1  # keep-alive: one connection for all requests
    # TCP_NODELAY, read back from the accepted socket above, is what prevents the ~40 ms
    # Nagle/delayed-ACK stall; the round trips are printed for a person to look at
    print(f"keep-alive round trip median {statistics.median(lat) * 1000:.1f} ms")


def test_client_disconnect_stops_the_stream(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_reply(tokens=[f"w{i} " for i in range(50)], token_ms=20)
    client = sync_client(fake_openai)
    stream = client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "x"}], stream=True
    )
    seen = 0
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            seen += 1
            if seen == 3:
                break
    stream.close()
    client.close()
    rec = fake_openai.chat_requests()[-1]
    assert wait_until(lambda: rec["disconnected"])
    assert not rec["completed"] and rec["tokens_sent"] < 10


def test_many_concurrent_streams(fake_openai: FakeOpenAI) -> None:
    """Eight streams are served at once: every client has its first token before any reads
    on (a barrier), and the server's records show all eight open at one instant. No
    wall-clock threshold: a loaded machine only makes it slower."""
    fake_openai.ttft_ms, fake_openai.token_ms = 20, 50
    words = [f"w{i}" for i in range(20)]  # about 1 s of streaming after the first token
    for _ in range(8):
        fake_openai.queue_reply(tokens=words)
    barrier = threading.Barrier(8, timeout=60)
    results: list[str] = []

    def worker(i: int) -> None:
        with sync_client(fake_openai) as client:
            stream = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": f"n{i}"}], stream=True
            )
            chunks = iter(stream)
            first = next(chunks)
            barrier.wait()
            rest = "".join(c.choices[0].delta.content or "" for c in chunks)
            results.append((first.choices[0].delta.content or "") + rest)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["".join(words)] * 8
    recs = fake_openai.chat_requests()
    assert len(recs) == 8 and all(r["completed"] for r in recs)
    # one instant at which every stream was open on the server
    assert max(r["t"] for r in recs) < min(r["t_done"] for r in recs)


# ---- FakeOpenAI: embeddings, models, errors ----------------------------------------------------


def test_embeddings_base64_by_default_and_float(fake_openai: FakeOpenAI) -> None:
    client = sync_client(fake_openai)
    out = client.embeddings.create(model="e", input=["I love green tea", "green tea please"])
    assert fake_openai.requests[-1]["body"]["encoding_format"] == "base64"  # SDK default
    vecs = [d.embedding for d in out.data]
    assert [len(v) for v in vecs] == [64, 64]
    np.testing.assert_allclose(vecs[0], fake_openai.embed("I love green tea"), atol=1e-6)
    assert abs(float(np.linalg.norm(vecs[0])) - 1.0) < 1e-5

    flt = client.embeddings.create(model="e", input="I love green tea", encoding_format="float")
    assert fake_openai.requests[-1]["body"]["encoding_format"] == "float"
    assert flt.data[0].embedding == fake_openai.embed("I love green tea")
    assert flt.usage.prompt_tokens == 4

    near = float(
        np.dot(hashed_embedding("green tea", 64), hashed_embedding("I love green tea", 64))
    )
    far = float(np.dot(hashed_embedding("green tea", 64), hashed_embedding("my cat Mochi", 64)))
    assert near > 0.5 and near > far

    short = client.embeddings.create(model="e", input="hello", dimensions=16)
    assert len(short.data[0].embedding) == 16


def test_models_and_unknown_paths(fake_openai: FakeOpenAI) -> None:
    client = sync_client(fake_openai)
    assert [m.id for m in client.models.list()] == ["fake-model"]
    r = httpx.get(f"{fake_openai.base_url}/nope")
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="m", prompt="legacy endpoint")
    r = httpx.post(
        f"{fake_openai.base_url}/chat/completions",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 400 and "error" in r.json()
    assert [r["kind"] for r in fake_openai.requests] == ["models"]


# ---- FakeOpenAI: mem0 --------------------------------------------------------------------------


@pytest.fixture
def mem0_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """mem0 reads MEM0_TELEMETRY and MEM0_DIR at import: set both before importing it."""
    monkeypatch.setenv("MEM0_TELEMETRY", "False")
    monkeypatch.setenv("MEM0_DIR", str(tmp_path / "mem0"))
    for var in ("OPENROUTER_API_KEY", "OPENAI_API_BASE", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    if "mem0" in sys.modules:  # imported earlier by another test: make sure nothing phones home
        import mem0.memory.main
        import mem0.memory.telemetry

        monkeypatch.setattr(mem0.memory.telemetry, "MEM0_TELEMETRY", False)
        monkeypatch.setattr(mem0.memory.main, "MEM0_TELEMETRY", False)
    return tmp_path


def mem0_config(fake: FakeOpenAI, tmp: Path) -> dict[str, Any]:
    return {
        "llm": {
            "provider": "openai",
            "config": {"model": "fake-model", "api_key": "test", "openai_base_url": fake.base_url},
        },
        "embedder": {
            "provider": "openai",
            "config": {
                "model": "fake-embed",
                "api_key": "test",
                "openai_base_url": fake.base_url,
                "embedding_dims": fake.dims,
            },
        },
        "vector_store": {
            "provider": "qdrant",
            "config": {
                "collection_name": "memories",
                "path": str(tmp / "qdrant"),
                "on_disk": True,
                "embedding_model_dims": fake.dims,
            },
        },
        "history_db_path": str(tmp / "history.db"),
    }


async def test_mem0_add_then_search_finds_the_fact(fake_openai: FakeOpenAI, mem0_env: Path) -> None:
    from mem0 import AsyncMemory

    assert os.environ["MEM0_TELEMETRY"] == "False"
    memory = AsyncMemory.from_config(mem0_config(fake_openai, mem0_env))
    try:
        fake_openai.queue_reply("persona reply stays queued")
        added = await memory.add(
            [
                {"role": "user", "content": "My cat is called Mochi. Do you like cats?"},
                {"role": "assistant", "content": "I love cats!"},
            ],
            user_id="u1",
        )
        assert [r["memory"] for r in added["results"]] == ["My cat is called Mochi."]
        assert fake_openai.pending_replies == 1  # mem0's call did not eat the chat queue

        kinds = [(r["kind"], r.get("mem0")) for r in fake_openai.requests]
        extract_at = kinds.index(("chat", "extract"))
        assert ("embeddings", None) in kinds[:extract_at]  # existing-memory search came first
        extract = fake_openai.chat_requests(mem0=True)[0]
        assert extract["body"]["response_format"] == {"type": "json_object"}

        found = await memory.search("What is my cat called?", filters={"user_id": "u1"})
        assert [r["memory"] for r in found["results"]][:1] == ["My cat is called Mochi."]
        other = await memory.search("What is my cat called?", filters={"user_id": "u2"})
        assert other["results"] == []

        # adding the same fact again is deduplicated by mem0 (the fake skips known memories)
        again = await memory.add("My cat is called Mochi.", user_id="u1")
        assert again["results"] == []
    finally:
        memory.vector_store.client.close()


async def test_mem0_scripted_memory_reply(fake_openai: FakeOpenAI, mem0_env: Path) -> None:
    from mem0 import AsyncMemory

    memory = AsyncMemory.from_config(mem0_config(fake_openai, mem0_env))
    try:
        scripted = {
            "memory": [
                {
                    "id": "0",
                    "text": "User prefers oolong",
                    "attributed_to": "user",
                    "linked_memory_ids": [],
                }
            ]
        }
        fake_openai.queue_memory_reply(json.dumps(scripted))
        added = await memory.add("Anything at all.", user_id="u9")
        assert [r["memory"] for r in added["results"]] == ["User prefers oolong"]
    finally:
        memory.vector_store.client.close()


def test_mem0_markers_match_the_installed_mem0_prompts(mem0_env: Path) -> None:
    from mem0.configs import prompts
    from mem0.memory import utils as mem0_utils
    from mem0.reranker.llm_reranker import LLMReranker

    user_prompt = prompts.generate_additive_extraction_prompt(
        existing_memories=[], new_messages="user: hi\n", last_k_messages=[]
    )
    extract = [
        {"role": "system", "content": prompts.ADDITIVE_EXTRACTION_PROMPT},
        {"role": "user", "content": user_prompt},
    ]
    assert classify_mem0(extract) == "extract"
    system, user = mem0_utils.get_fact_retrieval_messages("user: I like tea\n")
    assert (
        classify_mem0([{"role": "system", "content": system}, {"role": "user", "content": user}])
        == "facts"
    )
    update = prompts.get_update_memory_messages([{"id": "0", "text": "x"}], '["I like tea"]')
    assert classify_mem0([{"role": "user", "content": update}]) == "update"
    proc = [{"role": "system", "content": prompts.PROCEDURAL_MEMORY_SYSTEM_PROMPT}]
    assert classify_mem0([*proc, {"role": "user", "content": "steps"}]) == "procedural"
    rerank = [
        {"role": "system", "content": LLMReranker._SYSTEM_PROMPT},
        {"role": "user", "content": "Query: tea\n\nDocument: I like tea"},
    ]
    assert classify_mem0(rerank) == "rerank"
    assert classify_mem0([{"role": "user", "content": "hello"}]) is None


def test_mem0_legacy_and_auxiliary_calls_get_parseable_answers(
    fake_openai: FakeOpenAI, mem0_env: Path
) -> None:
    from mem0.configs import prompts
    from mem0.memory import utils as mem0_utils

    client = sync_client(fake_openai)

    def ask(messages: Any) -> str:
        out = client.chat.completions.create(model="m", messages=messages)
        return out.choices[0].message.content or ""

    system, user = mem0_utils.get_fact_retrieval_messages("user: I like tea. Why?\n")
    facts = json.loads(
        ask([{"role": "system", "content": system}, {"role": "user", "content": user}])
    )
    assert facts == {"facts": ["I like tea."]}
    update = prompts.get_update_memory_messages(
        [{"id": "0", "text": "Likes coffee"}], json.dumps(["I like tea."])
    )
    mem = json.loads(ask([{"role": "user", "content": update}]))["memory"]
    assert mem == [
        {"id": "0", "text": "Likes coffee", "event": "NONE"},
        {"id": "1", "text": "I like tea.", "event": "ADD"},
    ]
    score = ask(
        [
            {"role": "system", "content": "You are a relevance scoring assistant. Score."},
            {"role": "user", "content": "Query: green tea\n\nDocument: I love green tea"},
        ]
    )
    assert 0.5 < float(score) <= 1.0


# ---- FakeFish --------------------------------------------------------------------------------


def test_fish_msgpack_with_reference_returns_wav_and_records_audio(fake_fish: FakeFish) -> None:
    ref_audio = wav_bytes(sine_pcm16(0.3, 440.0))
    text = "Hello there, this is a cloned voice."
    body = {
        "text": text,
        "format": "wav",
        "references": [{"audio": ref_audio, "text": "reference words"}],
        "streaming": False,
    }
    r = httpx.post(
        f"{fake_fish.base_url}/v1/tts",
        content=ormsgpack.packb(body),
        headers={"content-type": "application/msgpack"},
    )
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(r.content)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (44100, 1, 2)
        seconds = w.getnframes() / w.getframerate()
        pcm = w.readframes(w.getnframes())
    assert abs(seconds - fake_fish.duration_for(text)) < 0.01
    assert abs(dominant_hz(pcm, 44100) - 330) < 5  # cloned voice tone
    (rec,) = fake_fish.tts_requests()
    assert rec["body"]["references"] == [{"audio": ref_audio, "text": "reference words"}]
    assert rec["content_type"] == "application/msgpack" and rec["completed"]


def test_fish_streaming_json_base64_reference(fake_fish: FakeFish) -> None:
    ref_audio = wav_bytes(sine_pcm16(0.2, 440.0))
    body = {
        "text": "A longer sentence so that the stream has several chunks in it.",
        "references": [{"audio": base64.b64encode(ref_audio).decode(), "text": "ref"}],
        "streaming": True,
    }
    with httpx.stream("POST", f"{fake_fish.base_url}/v1/tts", json=body) as r:
        assert r.status_code == 200
        chunks = list(r.iter_raw())
    data = b"".join(chunks)
    assert len(chunks) > 2
    header = data[:44]
    assert header[:4] == b"RIFF" and header[8:16] == b"WAVEfmt "
    assert int.from_bytes(header[40:44], "little") == 0  # streaming header: unknown length
    pcm = data[44:]
    assert len(pcm) // 2 == round(fake_fish.duration_for(body["text"]) * 44100)
    assert fake_fish.tts_requests()[-1]["body"]["references"][0]["audio"] == ref_audio

    bad = httpx.post(f"{fake_fish.base_url}/v1/tts", json={**body, "format": "mp3"})
    assert bad.status_code == 400
    assert bad.json() == {
        "statusCode": 400,
        "message": "Streaming only supports WAV format",
        "error": "Bad Request",
    }


def test_fish_mp3_pcm_references_and_failures(fake_fish: FakeFish) -> None:
    url = f"{fake_fish.base_url}/v1"
    mp3 = httpx.post(f"{url}/tts", json={"text": "short", "format": "mp3"})
    assert mp3.status_code == 200 and mp3.headers["content-type"] == "audio/mpeg"
    import av

    with av.open(io.BytesIO(mp3.content)) as container:
        decoded = sum(f.samples for f in container.decode(audio=0))
    assert decoded >= 0.2 * 44100 * 0.9

    pcm = httpx.post(f"{url}/tts", json={"text": "x" * 10, "format": "pcm"})
    assert len(pcm.content) == round(fake_fish.duration_for("x" * 10) * 44100) * 2

    ref = wav_bytes(sine_pcm16(0.1, 300.0))
    added = httpx.post(
        f"{url}/references/add",
        data={"id": "seoa", "text": "안녕하세요"},
        files={"audio": ("ref.wav", ref, "audio/wav")},
    )
    assert added.json()["success"] is True
    assert fake_fish.references["seoa"] == {"audio": ref, "text": "안녕하세요"}
    assert httpx.get(f"{url}/references/list").json()["reference_ids"] == ["seoa"]
    by_id = httpx.post(f"{url}/tts", json={"text": "hi", "reference_id": "seoa"})
    assert by_id.status_code == 200 and fake_fish.tts_requests()[-1]["freq"] == 330.0
    unknown = httpx.post(f"{url}/tts", json={"text": "hi", "reference_id": "nobody"})
    assert unknown.status_code == 500

    fake_fish.fail_next(503)
    assert httpx.post(f"{url}/tts", json={"text": "hi"}).status_code == 503
    assert httpx.post(f"{url}/tts", json={"text": "hi"}).status_code == 200
    assert httpx.post(f"{url}/tts", json={"text": "hi", "chunk_length": 5}).status_code == 422
    assert (
        httpx.post(f"{url}/tts", content=b"x", headers={"content-type": "text/plain"}).status_code
        == 415
    )
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{url}/nothing").status_code == 404


def test_fish_client_disconnect_mid_stream_is_recorded() -> None:
    with FakeFish(chunk_delay_ms=30, stream_chunk_ms=50) as fish:
        body = {"text": "x" * 100, "streaming": True}
        with httpx.stream("POST", f"{fish.base_url}/v1/tts", json=body) as r:
            it = r.iter_raw()
            next(it)
            next(it)
        rec = fish.tts_requests()[-1]
        assert wait_until(lambda: rec["disconnected"])
        assert not rec["completed"]


def test_servers_restart_cleanly_and_stop_fast() -> None:
    fake = FakeOpenAI()
    for _ in range(3):
        fake.start()
        assert httpx.get(f"{fake.base_url}/models").status_code == 200
        fake.stop()
        assert not fake.running  # stop() returned: the thread is gone, not lingering
    assert not fake.running
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{fake.base_url}/models")


def test_standalone_process_for_benchmarks() -> None:
    import signal
    import subprocess

    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.openai_server", "--tokens", "3", "--ttft-ms", "10"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert proc.stdout is not None
        base_url = proc.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        with openai.OpenAI(base_url=base_url, api_key="test") as client:
            out = client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x"}]
            )
        assert out.choices[0].message.content == "The quick brown."
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
