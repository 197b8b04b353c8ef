"""Streaming Silero VAD against real synthesized speech."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from server.providers.vad import (
    WINDOW_MS,
    WINDOW_SAMPLES,
    SileroVAD,
    VadEvent,
    VadStream,
    VADUnavailable,
)
from tests.speech import pcm16_frames, speak, speech_offset_ms, speech_onset_ms, with_silence

SENTENCE = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="session")
def vad() -> SileroVAD:
    return SileroVAD()


@pytest.fixture(scope="session")
def sentence() -> np.ndarray:
    return speak(SENTENCE)


def _run(stream: VadStream, audio: np.ndarray, frame_ms: int = 20) -> list[VadEvent]:
    events: list[VadEvent] = []
    for frame in pcm16_frames(audio, frame_ms):
        events.extend(stream.feed(frame))
    return events


def test_streaming_probs_equal_faster_whisper_batch(vad: SileroVAD, sentence: np.ndarray) -> None:
    """Context + LSTM state handled exactly like faster-whisper's own (batch) feeding."""
    from faster_whisper.vad import get_vad_model

    audio = with_silence(sentence, 500, 500)
    audio = np.pad(audio, (0, -audio.size % WINDOW_SAMPLES))
    batch = np.asarray(get_vad_model()(audio)).reshape(-1)
    stream = VadStream(vad)
    streamed = []
    for i in range(0, audio.size, WINDOW_SAMPLES):  # one window per call, as a stream
        stream.feed(audio[i : i + WINDOW_SAMPLES])
        streamed.append(stream.last_prob)
    np.testing.assert_allclose(streamed, batch, atol=1e-5)
    assert batch.max() > 0.9  # the comparison covered real speech


def test_silence_and_quiet_noise_give_no_events(vad: SileroVAD) -> None:
    stream = VadStream(vad)
    assert _run(stream, np.zeros(16_000 * 3, dtype=np.float32)) == []
    noise = np.random.default_rng(0).normal(0, 0.003, 16_000 * 3).astype(np.float32)
    assert _run(stream, noise) == []
    assert stream.t_ms == (16_000 * 6 // WINDOW_SAMPLES) * WINDOW_MS  # whole windows only
    assert stream.pop_utterance().size == 0
    assert stream.current_utterance().size == 0


def test_one_utterance_start_end_and_audio(vad: SileroVAD, sentence: np.ndarray) -> None:
    audio = with_silence(sentence, 1000, 1000)
    onset, offset = speech_onset_ms(audio), speech_offset_ms(audio)
    stream = VadStream(vad, min_silence_ms=500, speech_pad_ms=300)
    events = _run(stream, audio)
    assert [e.kind for e in events] == ["start", "end"]
    start, end = events
    assert abs(start.t_ms - onset) <= 150
    assert start.at_ms - start.t_ms >= 250  # confirmed only after min_speech_ms
    assert abs(end.t_ms - offset) <= 250
    assert end.at_ms - end.t_ms >= 500  # decided only after min_silence_ms
    assert start.onset_ms == end.onset_ms == start.t_ms
    utterance = stream.pop_utterance()
    # pad (>= 300 ms) + speech + 300 ms pad
    expected_ms = (end.t_ms + 300) - (start.t_ms - 320)
    assert abs(utterance.size / 16 - expected_ms) <= WINDOW_MS
    assert speech_onset_ms(utterance) >= 250  # the speech onset lies after the pre-roll
    assert float(np.sqrt(np.mean(utterance**2))) > 0.03
    assert stream.pop_utterance().size == 0


def test_current_utterance_grows_with_prefix_pad(vad: SileroVAD, sentence: np.ndarray) -> None:
    audio = with_silence(sentence, 1000, 1000)
    stream = VadStream(vad, speech_pad_ms=300)
    lengths: list[tuple[int, int]] = []
    started = None
    for frame in pcm16_frames(audio, 20):
        for event in stream.feed(frame):
            if event.kind == "start":
                started = event
        if stream.in_speech:
            lengths.append((stream.speech_ms, stream.current_utterance().size))
    assert started is not None
    assert len(lengths) > 20
    speech_ms, size = lengths[-1]
    assert speech_ms >= 2000
    # Pre-roll of ceil(300 / 32) windows before the onset, then all speech so far.
    assert size == (speech_ms + 10 * WINDOW_MS) * 16
    assert all(b[0] >= a[0] and b[1] >= a[1] for a, b in itertools.pairwise(lengths))


@pytest.mark.parametrize(
    ("text", "voice"),
    [(SENTENCE, "en-us"), ("Could you remind me to call my sister about the trip?", "en-us")],
)
def test_the_pause_starts_where_the_voice_fell_silent(
    vad: SileroVAD, text: str, voice: str
) -> None:
    """Silero's probability stays high for about a window after the voice stops, so the first
    silent window begins after the real end; by energy the pause starts at the real end
    (the silence a turn waits for counts from there), and the utterance still holds all the
    speech and the pad after it."""
    audio = with_silence(speak(text, voice), 1000, 1000)
    offset = speech_offset_ms(audio)
    audio += np.random.default_rng(0).normal(0, 0.001, audio.size).astype(np.float32)  # -60 dB
    # the noise lifts some of the fading tail over the level: where the noisy audio ends
    noisy_offset = speech_offset_ms(audio)
    late = _run(VadStream(vad, min_silence_ms=500, end_by_energy=False), audio)[-1]
    stream = VadStream(vad, min_silence_ms=500, end_by_energy=True)
    end = _run(stream, audio)[-1]
    print(f"real end {offset:.0f} ms, first silent window {late.t_ms}, by energy {end.t_ms}")
    assert late.kind == end.kind == "end"
    assert late.t_ms - offset >= 16  # the first silent window: late
    assert abs(end.t_ms - offset) <= 16  # by energy: at the real end (8 ms blocks)
    assert end.at_ms - end.t_ms >= 500  # still a whole VAD_SILENCE_MS of silence
    utterance = stream.pop_utterance()
    # all of it, and the pad (300 ms after an end up to 16 ms early), measured on the same
    # noisy samples the utterance holds
    tail_ms = utterance.size / 16 - speech_offset_ms(utterance)
    assert tail_ms >= 300 - 16 - (noisy_offset - offset)


def test_noise_louder_than_the_level_keeps_the_first_silent_window(
    vad: SileroVAD, sentence: np.ndarray
) -> None:
    """Room noise at -30 dBFS is louder than a tenth of the speech: the energy cannot say
    where the voice stopped, and the pause starts where Silero says, as without."""
    audio = with_silence(sentence, 1000, 1000)
    audio += np.random.default_rng(0).normal(0, 10 ** (-30 / 20), audio.size).astype(np.float32)
    by_model = _run(VadStream(vad, end_by_energy=False), audio)
    assert [e.kind for e in by_model] == ["start", "end"]
    assert _run(VadStream(vad, end_by_energy=True), audio) == by_model


def test_pause_splits_two_utterances(vad: SileroVAD, sentence: np.ndarray) -> None:
    second = speak("I would like a cup of coffee, please.")
    gap = np.zeros(16 * 1200, dtype=np.float32)
    audio = with_silence(np.concatenate((sentence, gap, second)), 1000, 1000)
    stream = VadStream(vad, min_silence_ms=500)
    events = _run(stream, audio)
    assert [e.kind for e in events] == ["start", "end", "start", "end"]
    assert events[1].t_ms < events[2].t_ms
    first_utt, second_utt = stream.pop_utterance(), stream.pop_utterance()
    for utt, spoken in ((first_utt, sentence), (second_utt, second)):
        speech = speech_offset_ms(spoken) - speech_onset_ms(spoken)
        # 320 ms pre-roll (whole windows) + speech + 300 ms pad, give or take VAD latency.
        assert abs(utt.size / 16 - (speech + 620)) < 150


def test_pause_shorter_than_min_silence_keeps_one_utterance(
    vad: SileroVAD, sentence: np.ndarray
) -> None:
    gap = np.zeros(16 * 300, dtype=np.float32)
    audio = with_silence(np.concatenate((sentence, gap, sentence)), 1000, 1000)
    events = _run(VadStream(vad, min_silence_ms=700), audio)
    assert [e.kind for e in events] == ["start", "end"]


def test_a_short_word_just_before_speech_is_kept_whole(vad: SileroVAD) -> None:
    """The "Stop" of a quick "Stop please." is too short to start speech on its own (a
    blip); the utterance that "please" starts still holds all of it, not only the pre-roll's
    300 ms (Whisper would hear "Please")."""
    audio = with_silence(speak("Stop please."), 500, 800)
    stream = VadStream(vad, min_speech_ms=250, min_silence_ms=600)
    start, end = _run(stream, audio)
    onset = speech_onset_ms(audio)
    assert start.at_ms - onset > 400  # speech was confirmed only at "please" ...
    assert abs(start.t_ms - onset) < 100  # ... and began with "Stop"
    utterance = stream.pop_utterance()
    begins_ms = end.t_ms + 300 - utterance.size * 1000 // 16_000
    assert begins_ms <= onset - 100  # before "Stop", with some of the silence before it


@pytest.mark.parametrize("frame_ms", [10, 37, 100])
def test_frame_length_does_not_change_events(
    vad: SileroVAD, sentence: np.ndarray, frame_ms: int
) -> None:
    second = speak("See you tomorrow.")
    audio = with_silence(
        np.concatenate((sentence, np.zeros(16 * 1200, np.float32), second)), 700, 900
    )
    reference = _run(VadStream(vad), audio, 20)
    assert len(reference) == 4
    assert _run(VadStream(vad), audio, frame_ms) == reference


def test_int16_float32_and_bytes_inputs_agree(vad: SileroVAD, sentence: np.ndarray) -> None:
    audio = with_silence(sentence, 600, 800)
    as_bytes = _run(VadStream(vad), audio, 30)
    pcm = np.frombuffer(b"".join(pcm16_frames(audio, 30)), dtype="<i2")
    as_int16 = VadStream(vad).feed(pcm)
    as_float = VadStream(vad).feed(pcm.astype(np.float32) / 32768.0)
    assert as_bytes == as_int16 == as_float
    assert [e.kind for e in as_bytes] == ["start", "end"]


def test_korean_speech_is_detected(vad: SileroVAD) -> None:
    audio = with_silence(speak("안녕하세요. 오늘 날씨가 정말 좋네요.", "ko"), 1000, 1000)
    events = _run(VadStream(vad), audio)
    assert [e.kind for e in events][:1] == ["start"]
    assert events[-1].kind == "end"


def test_max_speech_cuts_long_speech(vad: SileroVAD, sentence: np.ndarray) -> None:
    audio = with_silence(sentence, 500, 1000)
    stream = VadStream(vad, max_speech_ms=1000, min_silence_ms=500)
    events = _run(stream, audio)
    ends = [e for e in events if e.kind == "end"]
    assert len(ends) >= 2
    first_cut = ends[0]
    assert first_cut.at_ms == first_cut.t_ms  # cut at once, not after a silence
    cut_utt = stream.pop_utterance()
    assert 1000 <= cut_utt.size / 16 <= 1000 + 11 * WINDOW_MS


def test_force_pop_ends_speech_in_progress(vad: SileroVAD, sentence: np.ndarray) -> None:
    stream = VadStream(vad)
    events = _run(stream, with_silence(sentence, 500, 0)[: 16 * 2000])
    assert [e.kind for e in events] == ["start"]
    assert stream.pop_utterance().size == 0  # nothing finished yet
    audio = stream.pop_utterance(force=True)
    assert audio.size / 16 >= 1200
    assert not stream.in_speech
    assert stream.speech_ms == 0


def test_reset_clears_state(vad: SileroVAD, sentence: np.ndarray) -> None:
    stream = VadStream(vad)
    _run(stream, with_silence(sentence, 500, 0)[: 16 * 2000])
    assert stream.in_speech
    stream.reset()
    assert not stream.in_speech
    assert stream.t_ms == 0
    assert stream.current_utterance().size == 0


def test_bad_inputs_are_rejected(vad: SileroVAD, tmp_path) -> None:
    with pytest.raises(ValueError):
        VadStream(vad).feed(b"\x00\x01\x02")
    with pytest.raises(TypeError):
        VadStream(vad).feed(np.zeros(10, dtype=np.int32))
    with pytest.raises(ValueError):
        VadStream(vad, threshold=1.5)
    with pytest.raises(VADUnavailable):
        SileroVAD(tmp_path / "missing.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(VADUnavailable):
        SileroVAD(broken)


def test_window_cost_is_small(vad: SileroVAD, sentence: np.ndarray) -> None:
    """Budget check, loose on purpose (shared CI cores): ~0.1 ms per 32 ms window here."""
    audio = with_silence(sentence, 1000, 1000)
    stream = VadStream(vad)
    stream.feed(audio[:WINDOW_SAMPLES])  # warm-up
    frames = pcm16_frames(audio, 20)
    started = time.perf_counter()
    for frame in frames:
        stream.feed(frame)
    elapsed = time.perf_counter() - started
    per_window_ms = elapsed * 1000 / (audio.size / WINDOW_SAMPLES)
    assert per_window_ms < 2.0
