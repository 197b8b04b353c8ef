"""Child processes of the benchmarks (fake LLM, server): started so that they die with the
benchmark, and stopped politely, then firmly; and what /proc says about their CPU and
memory."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from argparse import Namespace
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads)."""
    with contextlib.suppress(OSError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    return float("nan")


def host_cpu_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole host since boot, summed over all CPUs."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    total = sum(fields)
    idle = fields[3] + fields[4]  # idle + iowait
    return (total - idle) / CLK_TCK, total / CLK_TCK


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
    return proc, await listening_url(log_path, lambda: proc.returncode is not None, timeout_s)


async def listening_url(log_path: Path, exited: Callable[[], bool], timeout_s: float) -> str:
    """The URL a starting server prints to its log ("listening on http://...")."""
    deadline = time.monotonic() + timeout_s
    while True:
        text = await asyncio.to_thread(log_path.read_text, errors="replace")
        if m := re.search(r"listening on (http://\S+)", text):
            return m.group(1)
        if exited() or time.monotonic() > deadline:
            raise RuntimeError(f"server did not start:\n{text[-3000:]}")
        await asyncio.sleep(0.05)


def fake_llm_settings(workdir: Path, llm_url: str) -> dict[str, str]:
    """What every benchmark's server is set to: its own data dir under ``workdir``, and
    the fake LLM at ``llm_url``."""
    return {
        "DATA_DIR": str(workdir / "data"),
        "LLM_BASE_URL": llm_url,
        "LLM_API_KEY": "x",
        "LLM_MODEL": "fake-model",
    }


def server_env(
    settings: dict[str, str], pythonpath: Sequence[str] = (), extra: Sequence[str] = ()
) -> dict[str, str]:
    """This process's environment minus every server setting (so nothing stray leaks in),
    plus ``settings`` and ``extra`` (``--set NAME=VALUE`` flags, for A/B runs), with
    ``pythonpath`` and the repository first on PYTHONPATH."""
    from server.config import Settings

    ours = {name.upper() for name in Settings.model_fields}
    env = {k: v for k, v in os.environ.items() if k.upper() not in ours}
    for item in extra:
        name, sep, value = item.partition("=")
        if not sep or name.upper() not in ours:
            raise SystemExit(f"--set {item!r}: expected NAME=VALUE with a server setting's name")
        settings = settings | {name.upper(): value}
    path = [*pythonpath, str(ROOT), env.get("PYTHONPATH", "")]
    return env | settings | {"PYTHONPATH": os.pathsep.join(filter(None, path))}


def status_ok(health: dict[str, Any]) -> bool:
    return health.get("status") == "ok"


class ServerProcess:
    """``desktopmate serve --port 0`` in its own process, ready once ``ready`` says so of its
    ``GET /health/details`` body (it may raise RuntimeError for a module that failed)."""

    def __init__(
        self,
        workdir: Path,
        env: dict[str, str],
        *,
        ready: Callable[[dict[str, Any]], bool] = status_ok,
        timeout_s: float = 120,
    ) -> None:
        self.workdir = workdir
        self.env = env
        self.ready = ready
        self.timeout_s = timeout_s
        self.log_path = workdir / "server.log"
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""

    async def start(self) -> None:
        await self.spawn()
        await self.wait_ready()

    async def spawn(self) -> None:
        """Start the process and learn its URL (overridable: tests fork a preloaded one)."""
        self.proc, self.url = await spawn_server(
            self.env, self.workdir, self.log_path, self.timeout_s
        )

    def exited(self) -> bool:
        return self.proc is None or self.proc.returncode is not None

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + self.timeout_s
        async with httpx.AsyncClient(base_url=self.url, timeout=5) as http:
            while True:
                try:
                    if self.ready((await http.get("/health/details")).json()):
                        return
                except httpx.HTTPError:
                    pass
                except RuntimeError as e:
                    raise RuntimeError(f"{e}:\n{self.log_tail()}") from None
                if self.exited() or time.monotonic() > deadline:
                    raise RuntimeError(f"server not ready:\n{self.log_tail()}")
                await asyncio.sleep(0.1)

    def log_tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]

    def log_events(self) -> list[dict[str, Any]]:
        """The server's structlog JSON lines (LOG_FORMAT=json), each with ``_ts`` (epoch s)."""
        out = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            try:
                ev = json.loads(line)
                ev["_ts"] = datetime.fromisoformat(ev["timestamp"]).timestamp()
            except (ValueError, KeyError, TypeError):
                continue
            out.append(ev)
        return out

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 80

    def ws_url(self, **params: str) -> str:
        return self.url.replace("http://", "ws://") + "/v1/ws?" + urlencode(params)

    async def details(self, reset: bool = False) -> dict[str, Any]:
        """``GET /health/details`` (``loop_lag_ms``: the server's event-loop lag)."""
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as http:
            r = await http.get("/health/details", params={"reset": "true"} if reset else None)
            r.raise_for_status()
            return r.json()

    async def stop(self) -> None:
        if self.proc is not None:
            await stop_process(self.proc, signal.SIGINT, 30)


async def print_tables(
    args: Namespace, prefix: str, tables: Callable[[Path], AsyncIterator[str]]
) -> int:
    """Make a benchmark's tables in a scratch folder (kept with --keep) within
    --max-seconds, then print them; 2 when it ran over."""
    base = Path(tempfile.mkdtemp(prefix=prefix))
    made = []
    try:
        async with asyncio.timeout(args.max_seconds):
            async for table in tables(base):
                made.append(table)
    except TimeoutError:
        print(f"benchmark stopped: over --max-seconds={args.max_seconds:g}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"logs kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    print()
    print("\n\n".join(made))
    return 0


def run_main(args: Namespace, amain: Callable[[Namespace], Awaitable[int]]) -> int:
    """Run a benchmark at --nice: set before any thread or child exists, so all inherit it."""
    if args.nice is not None:
        os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    return asyncio.run(amain(args))
