"""The SIMD level the local models' kernels run at, for the log and the benchmarks.

Why: CTranslate2 (Whisper) and onnxruntime (Smart Turn, Silero) pick their int8 kernels by
what the CPU offers, and that alone moves the voice latency: the same settings cost ~1.7x on
an AVX2-only EPYC what they cost with AVX-512 VNNI (bench/README.md, issue 19, "The pause
decode on this CPU"). A slow reply is then read against the right machine. Nothing is switched on
these flags: on the AVX2-only machine the defaults (int8, one thread per core up to 4,
Smart Turn on one thread) measured fastest too."""

from __future__ import annotations

from pathlib import Path

# the flags that decide the int8 / float kernels, in the order they are reported
SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8")


def _field(key: str, cpuinfo: str | None) -> str | None:
    """The first ``key : value`` of ``/proc/cpuinfo`` text (read when None); None when
    there is no such file (macOS, Windows) or line."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return None
    for line in cpuinfo.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() == key:
            return value.strip()
    return None


def simd_flags(cpuinfo: str | None = None) -> list[str]:
    """Which of ``SIMD_FLAGS`` the CPU has (``/proc/cpuinfo`` text, read when None)."""
    have = set((_field("flags", cpuinfo) or "").split())
    return [f for f in SIMD_FLAGS if f in have]


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name; "" when unknown."""
    return _field("model name", cpuinfo) or ""
