"""Child processes of the benchmarks (fake LLM, server): started so that they die with the
benchmark, and stopped politely, then firmly."""

from __future__ import annotations

import asyncio
import contextlib
import signal


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
