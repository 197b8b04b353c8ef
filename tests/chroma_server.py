"""A real Chroma server on loopback: the ``chroma run`` command the chromadb package installs
(its Rust server, in its own process), for tests that share one vector database between
replicas or stop it and bring it back. No in-process fake."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.llm_connect import free_port


class ChromaServer:
    """One ``chroma run`` on 127.0.0.1; ``stop`` and ``start`` keep its port and data."""

    def __init__(self, data: Path, port: int | None = None) -> None:
        self.data = data
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        exe = Path(sys.executable).with_name("chroma")
        log = self.data.parent / f"chroma-{self.port}.log"
        args = ["run", "--path", str(self.data), "--host", "127.0.0.1", "--port", str(self.port)]
        with log.open("ab") as out:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(
                [str(exe), *args],
                env=os.environ | {"ANONYMIZED_TELEMETRY": "False"},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chroma run exited {self.proc.returncode}: see {log}")
            try:
                if httpx.get(f"{self.url}/api/v2/heartbeat", timeout=1).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"the Chroma server did not answer within {timeout_s:g} s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


@contextmanager
def chroma_server(root: Path) -> Iterator[ChromaServer]:
    """A started Chroma server with its data under ``root``, stopped on the way out."""
    server = ChromaServer(root / "chroma-data")
    server.start()
    try:
        yield server
    finally:
        server.stop()
