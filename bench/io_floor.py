"""Issue 16: what relaying a streamed reply costs per token on this machine before any of
our code runs.

Each token of a streamed text turn costs the server one wake-up and read of the model's SSE
chunk and one WebSocket frame to the client. This benchmark sends the same traffic as
bench/scale.py (the fake LLM in its own process, one SSE chunk per token) through relays
with no framework, each in a process of its own, and prints the relay's CPU per token:

- ``raw``: an asyncio.Protocol on the model's socket writes each chunk it receives to the
  client socket as one WebSocket frame (no parsing): the event loop and the kernel alone;
- ``aiohttp``: aiohttp's streamed response (as server/providers/chat_stream.py reads it), one
  task per stream that parses each SSE event (orjson), builds the text delta event and
  writes it as a frame;
- ``aiohttp+hops``: the same, with the delta handed through two asyncio queues and tasks on
  its way to the socket, as the server's graph task, response task and socket writer do.

Compare with the server's own per-token CPU: ``bench.scale --sessions 10 --session-turns
10 --token-ms 5`` at ``--tokens 2`` and ``--tokens 202``, divided by the 200 tokens between
(bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.procs import FakeLLM, die_with_parent

MODES = ("raw", "aiohttp", "aiohttp+hops")
BODY = {"model": "fake", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def frame(payload: bytes) -> bytes:
    """One unmasked WebSocket text frame, as a server sends it (websockets' own framing)."""
    from websockets.frames import Frame, Opcode

    return Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def raw_turn(host: str, port: int, path: str, sink: asyncio.StreamWriter) -> int:
    """One turn over a fresh HTTP/1.1 connection; every chunk read goes out as a frame."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()
    body = json.dumps(BODY).encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body

    class Relay(asyncio.Protocol):
        reads = 0

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transport.write(request)  # type: ignore[attr-defined]

        def data_received(self, data: bytes) -> None:
            self.reads += 1
            sink.write(frame(data))

        def connection_lost(self, exc: Exception | None) -> None:
            if not done.done():
                done.set_result(self.reads)

    await loop.create_connection(Relay, host, port)
    return await done


async def aiohttp_turn(session: Any, url: str, sink: asyncio.StreamWriter, hops: bool) -> int:
    """One turn as the server reads it: SSE events parsed, a delta event per token."""
    import orjson

    out: list[asyncio.Queue[bytes | None]] = [asyncio.Queue(), asyncio.Queue()] if hops else []

    async def hop(src: asyncio.Queue[bytes | None], dst: asyncio.Queue[bytes | None]) -> None:
        while (item := await src.get()) is not None:
            dst.put_nowait(item)
        dst.put_nowait(None)

    async def writer(src: asyncio.Queue[bytes | None]) -> None:
        while (item := await src.get()) is not None:
            sink.write(frame(item))

    tasks = []
    if hops:
        last: asyncio.Queue[bytes | None] = asyncio.Queue()
        tasks = [asyncio.create_task(hop(out[0], out[1])), asyncio.create_task(hop(out[1], last))]
        tasks.append(asyncio.create_task(writer(last)))
    deltas = 0
    buf = b""
    async with session.post(url, json=BODY) as resp:
        while block := await resp.content.readany():
            buf += block
            *events, buf = buf.split(b"\n\n")
            for event in events:
                data = event.removeprefix(b"data: ")
                if data.startswith(b"[DONE]"):
                    continue
                chunk = orjson.loads(data)
                text = (chunk.get("choices") or [{}])[0].get("delta", {}).get("content")
                if text:
                    deltas += 1
                    payload = orjson.dumps({"type": "response.text.delta", "delta": text})
                    if hops:
                        out[0].put_nowait(payload)
                    else:
                        sink.write(frame(payload))
    if hops:
        out[0].put_nowait(None)
        await asyncio.gather(*tasks)
    return deltas


async def relay(args: argparse.Namespace) -> dict[str, Any]:
    """The measured process: ``--streams`` streams, ``--turns`` turns each, back to back."""
    import aiohttp

    url = f"{args.llm}/chat/completions"
    host_port = args.llm.split("//", 1)[1].split("/", 1)
    host, port = host_port[0].rsplit(":", 1)
    path = "/" + host_port[1] + "/chat/completions"
    session = aiohttp.ClientSession()

    async def stream() -> int:
        _, sink = await asyncio.open_connection("127.0.0.1", args.sink)
        n = 0
        for _ in range(args.turns):
            if args.relay == "raw":
                n += await raw_turn(host, int(port), path, sink)
            else:
                n += await aiohttp_turn(session, url, sink, args.relay == "aiohttp+hops")
            await sink.drain()
        sink.close()
        return n

    t0 = cpu_s()
    units = await asyncio.gather(*(stream() for _ in range(args.streams)))
    spent = cpu_s() - t0
    await session.close()
    return {"cpu_s": spent, "units": sum(units)}


async def run_mode(mode: str, llm: str, args: argparse.Namespace) -> dict[str, Any]:
    received = 0

    async def drain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal received
        while data := await reader.read(1 << 16):
            received += len(data)
        writer.close()

    sink = await asyncio.start_server(drain, "127.0.0.1", 0)
    port = sink.sockets[0].getsockname()[1]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.io_floor",
        f"--relay={mode}",
        f"--llm={llm}",
        f"--sink={port}",
        f"--streams={args.streams}",
        f"--turns={args.turns}",
        stdout=asyncio.subprocess.PIPE,
        preexec_fn=die_with_parent,
    )
    out, _ = await proc.communicate()
    sink.close()
    if proc.returncode != 0 or not out.strip():
        raise RuntimeError(f"the {mode} relay failed (exit {proc.returncode}); see its stderr")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["received"] = received
    return result


async def amain(args: argparse.Namespace) -> int:
    if args.relay:
        print(json.dumps(await relay(args)), flush=True)
        return 0
    tokens = args.streams * args.turns * args.tokens
    with tempfile.TemporaryDirectory(prefix="io-floor-") as tmp:
        fake = FakeLLM(
            Path(tmp) / "fake.log", ttft_ms=args.ttft_ms, token_ms=args.token_ms, tokens=args.tokens
        )
        await fake.start()
        try:
            rows = []
            for _ in range(args.repeat):
                for mode in MODES:
                    r = await run_mode(mode, fake.base_url, args)
                    rows.append((mode, r))
        finally:
            await fake.stop()
    print(
        f"\nrelay CPU per token: {args.streams} streams x {args.turns} turns x {args.tokens} tokens"
        f" every {args.token_ms:g} ms (the fake LLM in its own process; each relay its own)"
    )
    print(
        f"{'relay':<14} {'reads/frames':>12} {'CPU s':>7} {'us per token':>13} {'40 tokens, ms':>14}"
    )
    for mode, r in rows:
        per = r["cpu_s"] / tokens * 1e6
        print(
            f"{mode:<14} {r['units']:>12} {r['cpu_s']:>7.2f} {per:>13.0f} {per * 40 / 1000:>14.2f}"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=202)
    parser.add_argument("--token-ms", type=float, default=5)
    parser.add_argument("--ttft-ms", type=float, default=20)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each relay, alternated")
    parser.add_argument("--relay", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--llm", help=argparse.SUPPRESS)
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.relay:  # the measured relay runs on uvloop, as the server does
        import uvloop

        return uvloop.run(amain(args))
    return asyncio.run(amain(args))


if __name__ == "__main__":
    sys.exit(main())
