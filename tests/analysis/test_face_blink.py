"""Blink detection on synthetic sequences built from a real MediaPipe face.

Ground truth is exact: blinks (100-300 ms, realistic close/hold/open profile) are placed
at known times by moving the real upper-lid landmarks; noise, head sway and timestamp
jitter make the rest of the signal realistic.
"""

from __future__ import annotations

import numpy as np
import pytest

from analysis.face.blink import BlinkConfig, BlinkDetector, EyeState, eye_aspect_ratios
from tests.analysis import face_synth as fs


def _run(frames: list[fs.Frame], config: BlinkConfig | None = None) -> BlinkDetector:
    det = BlinkDetector(config)
    for f in frames:
        det.update(f.landmarks, f.t_ms, f.blendshapes, fs.W, fs.H)
    return det


def _random_blinks(seed: int, duration_ms: float) -> list[tuple[float, float]]:
    """Between 3 and 11 blinks at least 1.5 s apart, 100-300 ms each, after a 2 s lead-in."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 12))
    slots = np.arange(2000.0, duration_ms - 2000.0, 1500.0)
    starts = np.sort(rng.choice(slots, n, replace=False)) + rng.uniform(0, 300, n)
    return [(float(t), float(rng.uniform(100, 300))) for t in starts]


def test_ear_of_real_face_drops_when_lids_close() -> None:
    lm = fs.neutral_frame()
    r_open, l_open = eye_aspect_ratios(lm, fs.W, fs.H)
    r_half, l_half = eye_aspect_ratios(fs.close_eyes(lm, 0.5), fs.W, fs.H)
    r_shut, l_shut = eye_aspect_ratios(fs.close_eyes(lm, 1.0), fs.W, fs.H)
    assert 0.15 < r_open < 0.45 and 0.15 < l_open < 0.45
    assert r_half == pytest.approx(r_open / 2, rel=0.05)
    assert l_half == pytest.approx(l_open / 2, rel=0.05)
    assert r_shut < 0.01 and l_shut < 0.01


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("noise_px", [0.4, 0.8])
def test_counts_exactly_the_synthesised_blinks(seed: int, noise_px: float) -> None:
    blinks = _random_blinks(seed, 40_000)
    det = _run(fs.blink_sequence(40_000, blinks, noise_px=noise_px, seed=seed))
    assert det.count == len(blinks)
    assert det.long_closures == 0
    # Each blink is time-stamped at its start: within the closing phase of the true blink.
    for t_detected, (t0, dur) in zip(det.blink_times, blinks, strict=True):
        assert t0 - 40 <= t_detected <= t0 + 0.35 * dur + 40


@pytest.mark.parametrize("seed", range(4))
def test_counts_with_blendshape_signal(seed: int) -> None:
    blinks = _random_blinks(seed + 100, 40_000)
    frames = fs.blink_sequence(40_000, blinks, seed=seed, with_blendshapes=True)
    assert _run(frames).count == len(blinks)


@pytest.mark.parametrize("noise_px", [0.4, 0.8, 1.2])
def test_steady_eyes_give_no_blinks(noise_px: float) -> None:
    det = _run(fs.blink_sequence(60_000, [], noise_px=noise_px, seed=7))
    assert det.count == 0
    assert det.long_closures == 0
    assert det.rate_per_min() == 0.0


def test_long_closure_is_not_a_blink() -> None:
    blinks = [(3000.0, 150.0), (12_000.0, 200.0)]
    frames = fs.blink_sequence(20_000, blinks, closures=((6000.0, 2000.0),), seed=4)
    det = _run(frames)
    assert det.count == 2
    assert det.long_closures == 1
    assert all(not 5900 <= t <= 8200 for t in det.blink_times)


def test_noise_spike_of_one_frame_is_not_a_blink() -> None:
    """A single frame with shut lids (tracking glitch) is shorter than min_blink_ms."""
    frames = fs.blink_sequence(5000, [], seed=1)
    k = 60
    frames[k] = fs.Frame(frames[k].t_ms, fs.close_eyes(frames[k].landmarks, 0.9), None)
    assert _run(frames).count == 0


def test_adapts_to_narrow_eyes() -> None:
    """Open-eye EAR 55% of the reference face: a fixed EAR threshold tuned on the reference
    would call the whole sequence closed; the per-user baseline still counts exactly."""
    narrow = fs.close_eyes(fs.neutral_frame(), 0.45)
    ear_ref = np.mean(eye_aspect_ratios(fs.neutral_frame(), fs.W, fs.H))
    ear_narrow = np.mean(eye_aspect_ratios(narrow, fs.W, fs.H))
    assert ear_narrow < 0.6 * ear_ref
    blinks = _random_blinks(11, 30_000)
    det = _run(fs.blink_sequence(30_000, blinks, base=narrow, seed=11))
    assert det.count == len(blinks)
    assert det.ear_baseline.value == pytest.approx(ear_narrow, rel=0.1)


def test_blendshapes_and_ear_must_agree() -> None:
    """With both signals present the fused closure is their mean: a blendshape stuck at
    its resting value caps closure at 0.5 (< closed threshold), so lids alone cannot make a
    blink, and neither can a blendshape spike with open lids."""
    blinks = [(2000.0, 200.0), (5000.0, 200.0)]
    lids_only = fs.blink_sequence(8000, blinks, seed=2)
    stuck = [
        fs.Frame(f.t_ms, f.landmarks, {"eyeBlinkLeft": 0.05, "eyeBlinkRight": 0.05})
        for f in lids_only
    ]
    assert _run(stuck).count == 0
    assert _run(lids_only).count == 2  # same lids without blendshapes: EAR alone counts

    steady = fs.blink_sequence(8000, [], seed=2)
    spikes = []
    for f in steady:
        b = 0.9 if any(t0 <= f.t_ms <= t0 + d for t0, d in blinks) else 0.05
        spikes.append(fs.Frame(f.t_ms, f.landmarks, {"eyeBlinkLeft": b, "eyeBlinkRight": b}))
    assert _run(spikes).count == 0


def test_state_machine_walks_through_all_states() -> None:
    frames = fs.blink_sequence(3000, [(1500.0, 300.0)], noise_px=0.0, seed=0)
    det = BlinkDetector()
    seen = []
    for f in frames:
        det.update(f.landmarks, f.t_ms, None, fs.W, fs.H)
        if not seen or seen[-1] != det.state:
            seen.append(det.state)
    assert seen == [
        EyeState.OPEN,
        EyeState.CLOSING,
        EyeState.CLOSED,
        EyeState.OPENING,
        EyeState.OPEN,
    ]
    assert det.count == 1


def test_blink_rate_over_sliding_window() -> None:
    blinks = [(1000.0 + 5000.0 * i, 150.0) for i in range(12)]  # 12 in the first minute
    frames = fs.blink_sequence(120_000, blinks, seed=5)
    det = BlinkDetector()
    rate_at_60s = None
    for f in frames:
        det.update(f.landmarks, f.t_ms, None, fs.W, fs.H)
        if rate_at_60s is None and f.t_ms >= 60_000:
            rate_at_60s = det.rate_per_min(f.t_ms)
    assert det.count == 12
    assert rate_at_60s == pytest.approx(12.0, abs=0.3)
    # A minute later the window (60 s) holds no blink any more.
    assert det.rate_per_min() == 0.0


def test_early_rate_uses_minimum_span() -> None:
    """One blink in the first 2 s reads as 6/min (10 s floor), not 30/min."""
    det = _run(fs.blink_sequence(2000, [(800.0, 150.0)], seed=3))
    assert det.count == 1
    assert det.rate_per_min() == pytest.approx(60_000.0 / BlinkConfig().rate_min_span_ms)
