"""The fake OpenAI server as a separate benchmark process, with its request log readable.

``python -m tests.fakes.openai_server`` serves but cannot hand its request timestamps to
another process. This runs the same ``FakeOpenAI`` and adds a line protocol on stdin:

- ``dump``  -> one JSON line on stdout: the compact request records (see ``compact``)
- ``clear`` -> forget the records, answers ``ok``
- end of stdin -> stop and exit (so the process never outlives the benchmark)

Timestamps are ``time.monotonic()`` (CLOCK_MONOTONIC, shared by every process on the host),
so the benchmark can line them up with its own clock.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from typing import Any

from tests.fakes.openai_server import FakeOpenAI, Reply

# Turns of the benchmark's tool phase (tag "[tool s00 t000]"): the model first calls
# schedule_list (a store read, no external call), then answers with the usual tokens.
TOOL_TURN = re.compile(r"\[tool s\d+ t\d+\]")


def _last_user_text(body: dict[str, Any]) -> str:
    for m in reversed(body.get("messages") or []):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, list):
                return " ".join(str(p.get("text", "")) for p in c if isinstance(p, dict))
            return str(c or "")
    return ""


def compact(record: dict[str, Any]) -> dict[str, Any]:
    """What the benchmark needs of one request record (no bodies: they grow per turn)."""
    body = record.get("body") or {}
    out: dict[str, Any] = {"kind": record.get("kind"), "t": record.get("t")}
    if record.get("kind") == "chat":
        out |= {
            "mem0": record.get("mem0"),
            "stream": record.get("stream"),
            "t_first_token": record.get("t_first_token"),
            "t_done": record.get("t_done"),
            "tokens_sent": record.get("tokens_sent"),
            "completed": record.get("completed"),
            "user": _last_user_text(body)[-300:],
            "after_tool": ((body.get("messages") or [{}])[-1]).get("role") == "tool",
        }
    elif record.get("kind") == "embeddings":
        out["user"] = " | ".join(str(i)[:300] for i in record.get("inputs") or [])
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ttft-ms", type=float, default=200)
    parser.add_argument("--token-ms", type=float, default=20)
    parser.add_argument("--tokens", type=int, default=60)
    parser.add_argument("--dims", type=int, default=64)
    args = parser.parse_args(argv)
    fake = FakeOpenAI(args.ttft_ms, args.token_ms, dims=args.dims)
    fixed = FakeOpenAI.default_tokens(args.tokens)

    def reply(body: dict[str, Any]) -> list[str] | Reply:
        last = (body.get("messages") or [{}])[-1]
        if last.get("role") == "user" and body.get("tools"):
            if TOOL_TURN.search(_last_user_text(body)):
                return Reply(tool_calls=[{"name": "schedule_list", "arguments": {}}])
        return fixed

    fake.set_default(reply)
    with fake:
        print(fake.base_url, flush=True)
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == "dump":
                records = [compact(r) for r in fake.requests.snapshot()]
                print(json.dumps(records), flush=True)
            elif cmd == "clear":
                fake.requests.clear()
                print("ok", flush=True)
            else:
                print(json.dumps({"error": f"unknown command {cmd!r}"}), flush=True)


if __name__ == "__main__":
    main()
