"""``cpu_info``: the SIMD level and model name read from /proc/cpuinfo text."""

from __future__ import annotations

from server.providers.cpu_info import cpu_model, simd_flags

EPYC_AVX2 = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu sse sse2 ssse3 fma sse4_1 sse4_2 avx f16c avx2 bmi2 sha_ni
"""

XEON_VNNI = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
flags\t\t: fpu avx avx2 fma avx512f avx512bw avx512_vnni amx_int8
power management:
"""


def test_avx2_only_cpu_reports_avx2_and_fma() -> None:
    assert simd_flags(EPYC_AVX2) == ["avx2", "fma"]
    assert cpu_model(EPYC_AVX2) == "AMD EPYC"


def test_avx512_cpu_reports_its_vnni_and_amx_in_order() -> None:
    assert simd_flags(XEON_VNNI) == ["avx2", "fma", "avx512f", "avx512_vnni", "amx_int8"]
    assert cpu_model(XEON_VNNI).startswith("Intel(R) Xeon(R) Platinum 8375C")


def test_text_without_flags_or_model_gives_nothing() -> None:
    assert simd_flags("processor\t: 0\n") == []
    assert cpu_model("") == ""


def test_this_machine_reads_without_error() -> None:
    flags = simd_flags()
    assert set(flags) <= {"avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8"}
    assert isinstance(cpu_model(), str)
