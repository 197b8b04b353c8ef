"""bench/voice_turns.py's table: each row that ran, measured against its goal."""

from __future__ import annotations

from typing import Any

import numpy as np

from bench.stats import p50_p95, pct


def report(res: dict[str, Any]) -> str:
    """The table of the rows that ran."""
    rows: list[tuple[str, str, str]] = []

    def row(label: str, measured: str, goal: str) -> None:
        rows.append((label, measured, goal))

    if "latency" in res:
        lat = res["latency"]
        en = lat["en"]["eos_audio"]
        row(
            "EN end of speech -> first reply audio, p50 (ms)",
            f"{pct(en, 50):.0f} (n={len(en)})",
            "<= 550",
        )
        row("EN end of speech -> first reply audio, p95 (ms)", f"{pct(en, 95):.0f}", "<= 800")
        ko = lat["ko"]["eos_audio"]
        row(
            "KO end of speech -> first reply audio, p50/p95 (ms)",
            f"{p50_p95(ko)} (n={len(ko)})",
            "reported",
        )
        for key in (
            "eos_to_turn_ms",
            "eos_to_transcript_ms",
            "eos_to_llm_ms",
            "eos_to_first_token_ms",
            "eos_to_first_audio_ms",
            "eos_to_played_ms",
        ):
            v = [t[key] for t in lat["en"]["steps"] if t.get(key) is not None]
            row(f"  server timings {key}, p50/p95", p50_p95(v), "")
    if "paused" in res:
        p = res["paused"]
        row(
            "paused sentences (600-900 ms pause) cut in two",
            f"{p['cut']} of {p['n']}",
            "<= 1 of 20",
        )
    if "latency" in res:
        steps = res["latency"]["en"]["steps"] + res["latency"]["ko"]["steps"]
        srv_cpu = [t["turn_cpu_ms"] for t in steps if t.get("turn_cpu_ms") is not None]
        row(
            "end-of-turn decision CPU p50, server turn_cpu_ms (ms)",
            f"{pct(srv_cpu, 50):.1f}",
            "<= 15",
        )
        ran = [v for v in srv_cpu if v > 0]  # 0: the words settled the pause, no model run
        row(
            "  ... the model's own cost when it ran, p50 (ms)",
            f"{pct(ran, 50):.1f} (ran at {len(ran)} of {len(srv_cpu)} turns)",
            "",
        )
    cpu_in = res["cpu_in_process"]
    row("end-of-turn decision CPU p50, in process (ms)", f"{pct(cpu_in, 50):.1f}", "<= 15")
    if "backchannels" in res:
        b = res["backchannels"]
        row("backchannels over a reply that cancel it", f"{b['cancels']} of {b['n']}", "0 of 20")
    for key, what in (
        ("stops", "stop phrases"),
        ("first_stops", "stops 300 ms into a first reply"),
    ):
        if key not in res:
            continue
        s = res[key]
        within = sum(d <= 300 for d in s["delays"])
        row(f"{what} that cancel the reply", f"{len(s['delays'])} of {s['n']}", "20 of 20")
        row("  ... within 300 ms of the phrase's end", f"{within} of {s['n']}", "20 of 20")
        row(
            "  phrase end -> response.done cancelled, p50/p95 (ms; < 0: before the end)",
            p50_p95(s["delays"]),
            "",
        )
    if "trailing" in res:
        ts = [t for t in res["trailing"]["steps"] if t.get("eos_to_first_token_ms") is not None]
        gap = [t["eos_to_first_token_ms"] - t["eos_to_turn_ms"] for t in ts]
        first = [t["eos_to_first_token_ms"] for t in ts]
        row(
            "trailing-off sentences: turn end -> first token, p50/p95 (ms)",
            f"{p50_p95(gap)} (n={len(gap)})",
            "reported",
        )
        row(
            "  ... end of speech -> first token, p50/p95 (ms)",
            p50_p95(first),
            "",
        )
    if pre := res.get("preemptive"):
        row(
            "preemptive starts: kept / discarded (all rows)",
            f"{pre['preemptive_kept']} / {pre['preemptive_discarded']}",
            f"of {pre['preemptive_start']} started",
        )
    if decodes := res.get("decodes"):
        waits = [d.get("stt_wait_ms", 0) for d in decodes]
        queued = [w for w in waits if w > 0]
        row(
            "final decodes queued behind another, wait p50/p95 (ms)",
            f"{len(queued)} of {len(waits)}: {p50_p95(queued)}",
            "reported",
        )
        if pre:
            wasted = pre["preemptive_discarded"] / len(decodes)
            row("  ... preemptive starts discarded per turn", f"{wasted:.2f}", "reported")
    if "echo" in res:
        e = res["echo"]
        row("echo -6 dB, 30-120 ms, noise: barge-ins", f"{e['barges']} of {e['n']} replies", "0")
        row("  ... speech_started / transcripts", f"{e['started']} / {e['transcripts']}", "0 / 0")
        row(
            "  user speaking over the echo: WER, mean",
            f"{np.mean(e['wer']):.2f} (n={len(e['wer'])})",
            "reported",
        )
    w = max(len(r[0]) for r in rows) + 2
    lines = [f"{'turn taking (issue 19)':<{w}}{'measured':<26}goal", "-" * (w + 40)]
    lines += [f"{a:<{w}}{m:<26}{g}" for a, m, g in rows]
    if "gaze" in res:  # bench/voice_gaze.py: its own table, gaze on vs off
        from bench.voice_gaze import table

        lines += ["", table(res["gaze"])]
    return "\n".join(lines)
