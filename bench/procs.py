"""Child processes of the benchmarks (fake LLM, server): started so that they die with the
benchmark, and stopped politely, then firmly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def die_with_parent() -> None:
    """Linux: the child gets SIGTERM if the benchmark dies, so nothing is left running.
    Pass as ``preexec_fn``."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


async def stop_process(proc: asyncio.subprocess.Process, sig: int, grace_s: float) -> None:
    """Send ``sig``; kill after ``grace_s`` if it has not exited."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        await asyncio.wait_for(proc.wait(), grace_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


class FakeLLM:
    """bench.fake_llm (the tests' FakeOpenAI) in its own process, so its CPU stays out of the
    server's measurements; ``dump()`` returns its request records."""

    def __init__(
        self, log_path: Path, *, ttft_ms: float, token_ms: float, tokens: int, dims: int = 64
    ) -> None:
        self.log_path = log_path
        self.flags = [
            f"--ttft-ms={ttft_ms}",
            f"--token-ms={token_ms}",
            f"--tokens={tokens}",
            f"--dims={dims}",
        ]
        self.proc: asyncio.subprocess.Process | None = None
        self.base_url = ""

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.fake_llm",
            *self.flags,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=self.log_path.open("wb"),
            limit=256 << 20,
            preexec_fn=die_with_parent,
        )
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        self.base_url = line.decode().strip()
        if not self.base_url.startswith("http"):
            raise RuntimeError(f"fake LLM did not start: {self.log_path.read_text()[-2000:]}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def dump(self) -> list[dict[str, Any]]:
        assert self.proc is not None and self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(b"dump\n")
        await self.proc.stdin.drain()
        return json.loads(await asyncio.wait_for(self.proc.stdout.readline(), 60))

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.stdin is not None:
            with contextlib.suppress(Exception):
                self.proc.stdin.close()  # end of stdin: the fake stops by itself
        await stop_process(self.proc, signal.SIGTERM, 5)


async def spawn_server(
    env: dict[str, str], workdir: Path, log_path: Path, timeout_s: float
) -> tuple[asyncio.subprocess.Process, str]:
    """``desktopmate serve --port 0`` in ``workdir`` (so no stray .env is read), output to
    ``log_path``; returns the process and the URL it printed. Readiness is the caller's."""
    script = Path(sys.executable).with_name("desktopmate")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]
    out = log_path.open("wb")
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        "serve",
        "--port",
        "0",
        cwd=workdir,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=out,
        stderr=out,
        preexec_fn=die_with_parent,
    )
    deadline = time.monotonic() + timeout_s
    while True:
        text = await asyncio.to_thread(log_path.read_text, errors="replace")
        if m := re.search(r"listening on (http://\S+)", text):
            return proc, m.group(1)
        if proc.returncode is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server did not start:\n{text[-3000:]}")
        await asyncio.sleep(0.05)
