"""The lean stream path (server/providers/chat_stream.py, server/agent/wire.py) against the
fake model server, with langchain-openai's ChatOpenAI as the reference: the same request
body, the same reply, and every failure classified exactly as the SDK's path is."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_openai import ChatOpenAI
from langchain_openai.chat_models.base import _convert_message_to_dict

from server.agent.graph import refuses_tools
from server.agent.wire import to_ai_message, to_openai
from server.providers.chat_stream import ChatStream
from server.providers.failures import llm_failure, paced
from server.providers.sse import SSEParser
from tests.fakes import HttpRequest, HttpResponse, LoopbackServer
from tests.fakes.openai_server import FakeOpenAI

HISTORY = [
    ("system", "You are Emma."),
    HumanMessage("What is on my list?", id="m1"),
    AIMessage(
        "",
        tool_calls=[{"id": "call_1", "name": "schedule_list", "args": {"days": 2}}],
        invalid_tool_calls=[
            {"id": "call_2", "name": "memory_add", "args": "{bad", "error": "x", "type": "x"}
        ],
    ),
    ToolMessage('{"items": []}', tool_call_id="call_1", name="schedule_list"),
    ToolMessage('{"error": "bad args"}', tool_call_id="call_2", name="memory_add"),
    AIMessage("Nothing today.", id="r1", additional_kwargs={"interrupted": True}),
    HumanMessage([{"type": "text", "text": "thanks"}], id="m2"),
    SystemMessage("[tool schedule_list] nothing"),
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "schedule_list",
            "description": "List the schedule.",
            "parameters": {"type": "object", "properties": {"days": {"type": "integer"}}},
        },
    }
]


def lean(fake: FakeOpenAI | str, **over: Any) -> ChatStream:
    url = fake if isinstance(fake, str) else fake.base_url
    opts: dict[str, Any] = {
        "temperature": 0.7,
        "max_tokens": 256,
        "timeout_s": 10.0,
        "max_retries": 2,
    }
    return ChatStream(url, "test", "fake-model", **(opts | over))


def reference(fake: FakeOpenAI | str) -> ChatOpenAI:
    url = fake if isinstance(fake, str) else fake.base_url
    return ChatOpenAI(
        model="fake-model",
        base_url=url,
        api_key="test",
        temperature=0.7,
        max_completion_tokens=256,
        timeout=10.0,
        max_retries=2,
        streaming=True,
        stream_usage=True,
    )


def as_openai(history: list[Any]) -> list[dict[str, Any]]:
    return [to_openai(m) for m in history]


def test_messages_convert_as_langchain_openai_converts_them() -> None:
    for m in HISTORY[1:]:
        assert to_openai(m) == _convert_message_to_dict(m), m
    assert to_openai(("system", "hi")) == {"role": "system", "content": "hi"}


async def test_the_request_and_the_reply_match_chat_openai(fake_openai: FakeOpenAI) -> None:
    tokens = ["Hi", ", ", "I am ", "이서아", "."]
    fake_openai.queue_reply(tokens=tokens)
    fake_openai.queue_reply(tokens=tokens)
    ref = await reference(fake_openai).bind_tools(TOOLS, tool_choice="none").ainvoke(HISTORY)
    chat = lean(fake_openai)
    got: list[str] = []
    try:
        result = await chat.stream(as_openai(HISTORY), got.append, tools=TOOLS, tool_choice="none")
    finally:
        await chat.aclose()
    sent_ref, sent = (r["body"] for r in fake_openai.chat_requests())
    assert sent == sent_ref
    assert "".join(got) == "".join(tokens)  # what arrived together is one delta
    reply = to_ai_message(result)
    assert reply.content == ref.content == "Hi, I am 이서아."
    keys = ("input_tokens", "output_tokens", "total_tokens")
    assert reply.usage_metadata is not None and ref.usage_metadata is not None
    assert {k: reply.usage_metadata[k] for k in keys} == {k: ref.usage_metadata[k] for k in keys}
    assert reply.response_metadata["finish_reason"] == "stop"


async def test_tool_calls_stream_into_calls_and_invalid_calls(fake_openai: FakeOpenAI) -> None:
    calls = [
        {"id": "call_a", "name": "schedule_list", "arguments": {"days": 3}},
        {"id": "call_b", "name": "memory_add", "arguments": '{"text": "tea"'},
        {"id": "call_c", "name": "schedule_list", "arguments": "[1]"},
    ]
    fake_openai.queue_reply("", tool_calls=calls)
    fake_openai.queue_reply("", tool_calls=calls)
    ref = await reference(fake_openai).bind_tools(TOOLS).ainvoke(HISTORY[:2])
    chat = lean(fake_openai)
    try:
        reply = to_ai_message(await chat.stream(as_openai(HISTORY[:2]), print, tools=TOOLS))
    finally:
        await chat.aclose()
    assert reply.tool_calls == ref.tool_calls
    assert [(c["id"], c["name"], c["args"]) for c in reply.tool_calls] == [
        ("call_a", "schedule_list", {"days": 3}),
        ("call_b", "memory_add", {"text": "tea"}),  # cut short: completed as LangChain does
    ]
    assert [(c["id"], c["name"], c["args"]) for c in reply.invalid_tool_calls] == [
        ("call_c", "schedule_list", "[1]")
    ]
    assert [c["id"] for c in ref.invalid_tool_calls] == ["call_c"]
    assert reply.response_metadata["finish_reason"] == "tool_calls"
    # the calls go back to the model in the shape langchain-openai sends
    assert to_openai(reply) == _convert_message_to_dict(reply)


async def failure_of(client: Any, fake: FakeOpenAI | str, first_s: float = 5, idle_s: float = 5):
    """Run one streamed call; the failure it ends in, as the hub reports it."""
    sent: list[str] = []

    async def turn() -> AsyncIterator[str]:
        if isinstance(client, ChatStream):  # deltas as they arrive, as the agent streams them
            pieces: asyncio.Queue[str | None] = asyncio.Queue()
            call = asyncio.ensure_future(
                client.stream([{"role": "user", "content": "hi"}], pieces.put_nowait)
            )
            call.add_done_callback(lambda _: pieces.put_nowait(None))
            try:
                while (piece := await pieces.get()) is not None:
                    sent.append(piece)
                    yield piece
                call.result()
            finally:
                call.cancel()
            return
        async for chunk in client.astream([("user", "hi")]):
            if chunk.content:
                sent.append(chunk.content)
                yield chunk.content

    try:
        async for _ in paced(turn(), first_s, idle_s):
            pass
    except Exception as e:
        return llm_failure(e, mid_reply=bool(sent), tries=3), e
    return None, None


FAULTS = [
    ({"fault": "hang_headers"}, "llm_timeout", "sent no reply within"),
    ({"tokens": ["a ", "b ", "c"], "fault": "hang", "fault_after": 2}, "llm_interrupted", "0.5 s"),
    ({"tokens": ["a ", "b ", "c"], "fault": "break", "fault_after": 2}, "llm_interrupted", "broke"),
    ({"tokens": ["a ", "b"], "fault": "garbage", "fault_after": 1}, "llm_invalid_response", ""),
    ({"fail_status": 401}, "llm_error", "API key"),
    ({"fail_status": 400}, "llm_error", "HTTP 400"),
]


@pytest.mark.parametrize(("reply", "code", "words"), FAULTS, ids=lambda v: str(v)[:40])
async def test_every_failure_is_classified_as_the_sdk_path_classifies_it(
    fake_openai: FakeOpenAI, reply: dict[str, Any], code: str, words: str
) -> None:
    got = []
    for client in (reference(fake_openai), lean(fake_openai)):
        fake_openai.queue_reply(**reply)
        failure, _ = await failure_of(client, fake_openai, first_s=0.5, idle_s=0.5)
        assert failure is not None and failure.code == code and words in failure.message
        got.append(failure)
        if isinstance(client, ChatStream):
            await client.aclose()
    assert got[0] == got[1]


async def test_unreachable_after_all_tries_as_the_sdk_says_it() -> None:
    down = "http://127.0.0.1:9/v1"
    ref, _ = await failure_of(reference(down), down)
    chat = lean(down, max_retries=1)
    got, _ = await failure_of(chat, down)
    await chat.aclose()
    assert ref is not None and got is not None
    assert got.code == ref.code == "llm_unreachable"


async def test_5xx_and_429_are_retried_then_the_reply_streams(fake_openai: FakeOpenAI) -> None:
    fake_openai.queue_reply(fail_status=503)
    fake_openai.queue_reply(fail_status=429)
    fake_openai.queue_reply("Third time lucky.")
    chat = lean(fake_openai)
    try:
        result = await chat.stream([{"role": "user", "content": "hi"}], print)
    finally:
        await chat.aclose()
    assert result.content == "Third time lucky."
    assert [r["status"] for r in fake_openai.chat_requests()] == [503, 429, 200]
    # out of retries: the last status is the error
    fake_openai.queue_reply(fail_status=500)
    fake_openai.queue_reply(fail_status=500)
    chat = lean(fake_openai, max_retries=1)
    failure, _ = await failure_of(chat, fake_openai)
    await chat.aclose()
    assert failure is not None and failure.message.endswith("HTTP 500.")
    assert len(fake_openai.chat_requests()) == 5


async def test_an_endpoint_without_tools_is_recognised(fake_openai: FakeOpenAI) -> None:
    fake_openai.reject_tools = True
    chat = lean(fake_openai)
    try:
        with pytest.raises(Exception) as err:
            await chat.stream([{"role": "user", "content": "hi"}], print, tools=TOOLS)
    finally:
        await chat.aclose()
    assert refuses_tools(err.value)  # the agent then falls back to plain replies
    assert len(fake_openai.chat_requests()) == 1  # a 400 is not retried


class RawSSE(LoopbackServer):
    """Answers every call with ``body`` as an SSE stream, split into ``pieces``."""

    def __init__(self, pieces: list[bytes]) -> None:
        super().__init__()
        self.pieces = pieces

    async def handle(self, request: HttpRequest) -> HttpResponse:
        async def gen() -> AsyncIterator[bytes]:
            for p in self.pieces:
                yield p

        return HttpResponse(headers={"content-type": "text/event-stream"}, stream=gen())


def chunk(text: str) -> bytes:
    return b'{"choices": [{"index": 0, "delta": {"content": "%s"}}]}' % text.encode()


async def test_sse_framing_crlf_split_lines_comments_and_no_final_blank_line() -> None:
    pieces = [
        b": keep-alive\r\n\r\ndata: " + chunk("Hel")[:10],
        chunk("Hel")[10:] + b"\r\n\r\n",
        b"event: message\ndata:" + chunk("lo") + b"\n\n",
        b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, '
        b'"total_tokens": 5}}\n\ndata: [DONE]',
    ]
    with RawSSE(pieces) as server:
        chat = lean(f"{server.root_url}/v1")
        got: list[str] = []
        try:
            result = await chat.stream([{"role": "user", "content": "hi"}], got.append)
        finally:
            await chat.aclose()
    assert "".join(got) == result.content == "Hello"
    assert result.usage == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def test_sse_events_do_not_depend_on_where_the_body_splits() -> None:
    body = (
        b': comment\r\n\r\nevent: message\r\ndata: {"a":\r\ndata: 1}\r\n\r\n'
        b"id: 7\ndata:[DONE]\n\ndata: tail"
    )
    want = [("message", b'{"a":\n1}'), (None, b"[DONE]"), (None, b"tail")]
    for cut in range(len(body) + 1):
        p = SSEParser()
        got = p.feed(body[:cut]) + p.feed(body[cut:]) + p.end()
        assert got == want, cut
    p = SSEParser()
    assert [e for b in body for e in p.feed(bytes([b]))] + p.end() == want


def test_a_block_of_one_whole_event_parses_as_the_line_by_line_path_does() -> None:
    """A block holding exactly one "data: ..." event skips the line loop: it must give
    what feeding the same bytes one at a time gives, also for blocks that only look whole."""
    blocks = [
        b'data: {"a": 1}\n\n',
        b"data: [DONE]\n\n",
        b"data: x\r\n\r\n",  # CRLF
        b"data: x\r\n\n",  # a CR before the blank line
        b"data: a\ndata: b\n\n",  # two data lines make one event
        b"data: a\n\ndata: b\n\n",  # two events
        b"data: \n\n",  # empty data
        b"data: x\n",  # not yet ended
        b"data: x\n\n\n",  # an extra blank line
    ]
    for block in blocks:
        slow = SSEParser()
        want = [e for b in block for e in slow.feed(bytes([b]))]
        assert SSEParser().feed(block) == want, block
    p = SSEParser()  # pending event name or text: the whole block goes the line-by-line way
    assert p.feed(b"event: message\n") == []
    assert p.feed(b'data: {"a": 1}\n\n') == [("message", b'{"a": 1}')]
    assert p.feed(b"data: par") == []
    assert p.feed(b"tial\n\n") == [(None, b"partial")]


async def test_paced_tokens_arrive_as_separate_deltas() -> None:
    with FakeOpenAI(ttft_ms=0, token_ms=40) as fake:
        fake.queue_reply(tokens=["One ", "two ", "three."])
        chat = lean(fake)
        got: list[str] = []
        try:
            await chat.stream([{"role": "user", "content": "hi"}], got.append)
        finally:
            await chat.aclose()
    assert got == ["One ", "two ", "three."]  # nothing is held back to batch


@pytest.mark.parametrize("fault", ["hang_headers", "hang"])
async def test_a_stalled_call_times_out_without_a_caller_timeout(
    fake_openai: FakeOpenAI, fault: str
) -> None:
    """timeout_s bounds the wait for the headers and for each piece of the body, on its
    own (the hub's paced() is not around it here); the turn after it streams normally."""
    chat = lean(fake_openai, timeout_s=0.4, max_retries=0)
    got: list[str] = []
    try:
        fake_openai.queue_reply(tokens=["a ", "b ", "c"], fault=fault, fault_after=2)
        t0 = asyncio.get_running_loop().time()
        with pytest.raises(openai.APITimeoutError):
            await chat.stream([{"role": "user", "content": "hi"}], got.append)
        assert 0.35 < asyncio.get_running_loop().time() - t0 < 3.0
        assert "".join(got) == ("" if fault == "hang_headers" else "a b ")
        fake_openai.queue_reply("Fine again.")
        result = await chat.stream([{"role": "user", "content": "hi"}], got.append)
        assert result.content == "Fine again."
    finally:
        await chat.aclose()


async def test_a_callers_cancel_of_a_streaming_call_stays_a_cancel(
    fake_openai: FakeOpenAI,
) -> None:
    chat = lean(fake_openai, timeout_s=0.3, max_retries=0)
    try:
        fake_openai.queue_reply(tokens=["a ", "b ", "c"], fault="hang", fault_after=1)
        streaming = asyncio.Event()
        call = asyncio.ensure_future(
            chat.stream([{"role": "user", "content": "hi"}], lambda _: streaming.set())
        )
        await streaming.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    finally:
        await chat.aclose()


@pytest.mark.parametrize(
    ("pieces", "code"),
    [
        ([b'data: {"error": {"message": "overloaded"}}\n\n'], "llm_error"),
        ([b"data: " + chunk("a") + b"\n\n", b"data: [1, 2]\n\n"], "llm_invalid_response"),
        ([b'data: {"choices": [{"delta": "text"}]}\n\n'], "llm_invalid_response"),
    ],
    ids=["error-event", "not-an-object", "bad-shape"],
)
async def test_errors_inside_the_stream(pieces: list[bytes], code: str) -> None:
    with RawSSE(pieces) as server:
        chat = lean(f"{server.root_url}/v1")
        failure, e = await failure_of(chat, f"{server.root_url}/v1")
        await chat.aclose()
    assert failure is not None and failure.code == code, e


async def test_turns_reuse_one_connection(fake_openai: FakeOpenAI) -> None:
    chat = lean(fake_openai)
    try:
        for n in range(3):
            fake_openai.queue_reply(f"Reply {n}.")
            result = await chat.stream([{"role": "user", "content": "hi"}], print)
            assert result.content == f"Reply {n}."
    finally:
        await chat.aclose()
    assert len(fake_openai.nodelay) == 1  # one TCP connection for all three calls


async def test_an_idle_connection_is_kept_for_keepalive_s_only(fake_openai: FakeOpenAI) -> None:
    """LLM_KEEPALIVE_S reaches the pool: a turn after a longer gap opens a new connection."""
    chat = lean(fake_openai, keepalive_s=0.1)
    try:
        for n in range(2):
            fake_openai.queue_reply(f"Reply {n}.")
            assert (await chat.stream([{"role": "user", "content": "hi"}], print)).content
            await asyncio.sleep(0.5)  # the pool's cleanup runs once per keepalive_s
    finally:
        await chat.aclose()
    assert len(fake_openai.nodelay) == 2


class DropsRequests(LoopbackServer):
    """Answers one SSE reply per request, but closes the connection without an answer on
    the requests numbered in ``drops`` (1-based): what a kept connection that the server
    closed while idle looks like to the client."""

    def __init__(self, drops: set[int]) -> None:
        super().__init__()
        self.drops = drops
        self.count = 0

    async def _read_request(self, conn: Any, writer: asyncio.StreamWriter) -> HttpRequest | None:
        request = await super()._read_request(conn, writer)
        if request is not None:
            self.count += 1
            if self.count in self.drops:
                return None  # read, then the connection closes without an answer
        return request

    async def handle(self, request: HttpRequest) -> HttpResponse:
        body = b"data: " + chunk(f"Reply {self.count}") + b"\n\ndata: [DONE]\n\n"
        return HttpResponse(headers={"content-type": "text/event-stream"}, body=body)


async def test_a_dropped_kept_connection_is_retried_at_once_and_uncounted() -> None:
    with DropsRequests({2}) as server:
        chat = lean(f"{server.root_url}/v1", max_retries=0)
        try:
            first = await chat.stream([{"role": "user", "content": "hi"}], print)
            second = await chat.stream([{"role": "user", "content": "hi"}], print)
        finally:
            await chat.aclose()
    assert (first.content, second.content) == ("Reply 1", "Reply 3")
    assert len(server.nodelay) == 2  # the dropped connection was replaced


async def test_a_server_that_keeps_dropping_fails_as_a_connection_error() -> None:
    with DropsRequests(set(range(1, 10))) as server:
        chat = lean(f"{server.root_url}/v1", max_retries=1)
        try:
            with pytest.raises(openai.APIConnectionError):
                await chat.stream([{"role": "user", "content": "hi"}], print)
        finally:
            await chat.aclose()
    assert server.count == 3  # the first try, the uncounted one, one counted retry


async def test_max_connections_bounds_the_streams_at_once(fake_openai: FakeOpenAI) -> None:
    """LLM_MAX_CONNECTIONS: four overlapping turns share two connections; the others wait
    for a free one and then stream whole."""
    chat = lean(fake_openai, max_connections=2)
    for n in range(4):
        fake_openai.queue_reply(tokens=[f"Reply {n}", "."], token_ms=50)
    try:
        results = await asyncio.gather(
            *(chat.stream([{"role": "user", "content": "hi"}], print) for _ in range(4))
        )
    finally:
        await chat.aclose()
    assert sorted(r.content for r in results) == [f"Reply {n}." for n in range(4)]
    assert len(fake_openai.nodelay) == 2


def test_proxy_settings_are_read_once_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "llm.local")
    assert lean("http://api.example.com/v1").proxy == "http://proxy.internal:3128"
    assert lean("http://llm.local:8000/v1").proxy is None
    monkeypatch.delenv("HTTP_PROXY")
    assert lean("http://api.example.com/v1").proxy is None
