"""Audio I/O against real encoders: every compressed input is produced with PyAV in the test."""

from __future__ import annotations

import io
import struct

import av
import numpy as np
import pytest

from server.providers.audio_io import (
    InvalidAudio,
    decode_audio,
    decode_to_pcm16,
    encode_mp3,
    float_to_pcm16,
    pcm16_to_float,
    validate_wav,
    write_wav,
)


def tone(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / rate)[int(np.argmax(spec))])


def encode_with_av(x: np.ndarray, rate: int, fmt: str, codec: str, layout: str = "mono") -> bytes:
    """Encode float samples into a container, the way a browser or phone would send it."""
    channels = 2 if layout == "stereo" else 1
    planes = np.repeat(np.asarray(x, np.float32).reshape(1, -1), channels, axis=0)
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        stream.codec_context.options = {"strict": "experimental"}  # FFmpeg's native vorbis
        frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=layout)
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


def wav_header(
    *,
    tag: int = 1,
    channels: int = 1,
    rate: int = 16000,
    bits: int = 16,
    data_size: int,
    byte_rate: int | None = None,
) -> bytes:
    block = channels * bits // 8
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + data_size,
        b"WAVE",
        b"fmt ",
        16,
        tag,
        channels,
        rate,
        rate * block if byte_rate is None else byte_rate,
        block,
        bits,
        b"data",
        data_size,
    )


# --------------------------------------------------------------------------- PCM helpers


def test_pcm16_round_trip_and_clipping() -> None:
    x = np.array([0.0, 0.5, -0.5, 1.0, -1.0, 2.0, -3.0, np.nan], dtype=np.float32)
    b = float_to_pcm16(x)
    assert len(b) == 2 * x.size
    y = pcm16_to_float(b)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y[:5], [0.0, 0.5, -0.5, 1.0, -1.0], atol=1 / 16384)
    assert y[5] == pytest.approx(32767 / 32768) and y[6] == pytest.approx(-32767 / 32768)
    assert y[7] == 0.0
    with pytest.raises(InvalidAudio, match="even"):
        pcm16_to_float(b"\x00\x01\x02")


# --------------------------------------------------------------------------- decoding


def test_wav_decodes_to_identical_samples_at_same_rate() -> None:
    x = tone(300, 0.5, 16000)
    y = decode_audio(write_wav(float_to_pcm16(x), 16000), 16000)
    assert y.dtype == np.float32 and y.ndim == 1 and y.size == x.size
    np.testing.assert_allclose(y, x, atol=2 / 32768)


def test_resampling_44k_to_16k_keeps_frequency_and_duration() -> None:
    x = tone(1000, 2.0, 44100)
    y = decode_audio(write_wav(float_to_pcm16(x), 44100), 16000)
    assert abs(y.size - 32000) <= 32
    assert peak_hz(y, 16000) == pytest.approx(1000, abs=2)
    assert float(np.sqrt(np.mean(y[1000:-1000] ** 2))) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_stereo_is_downmixed() -> None:
    rate = 16000
    left = tone(500, 1.0, rate)
    stereo = np.stack([left, left], axis=1).reshape(-1)
    y = decode_audio(write_wav(float_to_pcm16(stereo), rate, channels=2), rate)
    assert y.size == rate
    assert peak_hz(y, rate) == pytest.approx(500, abs=2)
    assert np.max(np.abs(y)) > 0.3


def test_mp3_from_encode_mp3_decodes_with_right_pitch() -> None:
    x = tone(440, 2.0, 44100, amp=0.3)
    mp3 = encode_mp3(float_to_pcm16(x), 44100)
    assert len(mp3) > 1000
    y = decode_audio(mp3, 16000)
    assert abs(y.size / 16000 - 2.0) < 0.1
    assert peak_hz(y, 16000) == pytest.approx(440, abs=3)


@pytest.mark.parametrize(
    ("fmt", "codec", "rate", "layout"),
    [
        ("webm", "libopus", 48000, "mono"),
        ("ogg", "libopus", 48000, "mono"),
        ("ogg", "vorbis", 44100, "stereo"),  # FFmpeg's vorbis encoder is stereo only
    ],
)
def test_browser_formats_decode(fmt: str, codec: str, rate: int, layout: str) -> None:
    data = encode_with_av(tone(800, 1.5, rate, amp=0.4), rate, fmt, codec, layout)
    y = decode_audio(data, 16000)
    assert abs(y.size / 16000 - 1.5) < 0.1
    assert peak_hz(y, 16000) == pytest.approx(800, abs=3)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"this is certainly not audio" * 50, "not a decodable audio file"),
        (bytes(range(256)) * 40, "not a decodable audio file"),
    ],
)
def test_garbage_raises_invalid_audio(data: bytes, message: str) -> None:
    with pytest.raises(InvalidAudio, match=message) as info:
        decode_audio(data)
    assert isinstance(info.value, ValueError)


def test_max_s_caps_decoded_length() -> None:
    wav = write_wav(float_to_pcm16(tone(200, 5.0, 16000)), 16000)
    assert decode_audio(wav, 16000, max_s=1.0).size == 16000


def test_decode_to_pcm16_and_streaming_mp3_chunks_concatenate() -> None:
    rate = 24000
    pcm = float_to_pcm16(tone(600, 1.0, rate, amp=0.3))
    a = encode_mp3(pcm, rate, for_streaming=True)
    b = encode_mp3(pcm, rate, for_streaming=True)
    assert a[:2] == b"\xff\xf3" or (a[0] == 0xFF and a[1] & 0xE0 == 0xE0)  # frame sync, no ID3
    assert encode_mp3(pcm, rate)[:3] == b"ID3"
    out = decode_to_pcm16(a + b, rate)
    assert abs(len(out) / 2 / rate - 2.0) < 0.15
    assert peak_hz(pcm16_to_float(out), rate) == pytest.approx(600, abs=3)


def test_encode_mp3_resamples_unsupported_rate_and_handles_empty() -> None:
    mp3 = encode_mp3(float_to_pcm16(tone(700, 1.0, 22000)), 22000)
    y = decode_audio(mp3, 16000)
    assert abs(y.size / 16000 - 1.0) < 0.1
    assert peak_hz(y, 16000) == pytest.approx(700, abs=3)
    assert encode_mp3(b"", 24000) == b""


# --------------------------------------------------------------------------- WAV validation


def five_second_wav(rate: int = 16000) -> bytes:
    return write_wav(float_to_pcm16(tone(220, 5.0, rate)), rate)


def test_validate_accepts_five_second_pcm_wav() -> None:
    info = validate_wav(five_second_wav())
    assert info.sample_rate == 16000 and info.channels == 1 and info.bits_per_sample == 16
    assert info.sample_format == "pcm"
    assert info.frames == 80000 and info.duration_s == pytest.approx(5.0)
    assert info.data_offset == 44 and info.data_size == 160000


def test_validate_rejects_renamed_mp3() -> None:
    mp3 = encode_mp3(float_to_pcm16(tone(220, 5.0, 24000)), 24000)
    with pytest.raises(InvalidAudio, match="not a RIFF/WAVE"):
        validate_wav(mp3)


@pytest.mark.parametrize("cut", [4, 20, 40])
def test_validate_rejects_truncated_header(cut: int) -> None:
    with pytest.raises(InvalidAudio):
        validate_wav(five_second_wav()[:cut])


def test_validate_rejects_truncated_data() -> None:
    wav = five_second_wav()
    with pytest.raises(InvalidAudio, match="truncated"):
        validate_wav(wav[: len(wav) // 2])
    # Header sizes patched to match the shorter file, but the data chunk still lies.
    short = bytearray(wav[: len(wav) // 2])
    struct.pack_into("<I", short, 4, len(short) - 8)
    with pytest.raises(InvalidAudio, match="data chunk claims"):
        validate_wav(bytes(short))


def test_validate_rejects_too_short_and_too_long() -> None:
    one_second = write_wav(float_to_pcm16(tone(220, 1.0, 16000)), 16000)
    with pytest.raises(InvalidAudio, match="minimum is 3 s"):
        validate_wav(one_second)
    long = write_wav(float_to_pcm16(np.zeros(16000 * 61, np.float32)), 16000)
    with pytest.raises(InvalidAudio, match="maximum is 60 s"):
        validate_wav(long)
    with pytest.raises(InvalidAudio, match="limit"):
        validate_wav(five_second_wav(), max_bytes=1000)


def test_validate_format_rules() -> None:
    n = 16000 * 4 * 4
    float_wav = wav_header(tag=3, bits=32, data_size=n) + bytes(n)
    assert validate_wav(float_wav).sample_format == "float"
    with pytest.raises(InvalidAudio, match="format tag"):
        validate_wav(float_wav, allow_float=False)
    with pytest.raises(InvalidAudio, match="format tag 0x0055"):
        validate_wav(wav_header(tag=0x55, data_size=n) + bytes(n))
    with pytest.raises(InvalidAudio, match="byte rate"):
        validate_wav(wav_header(byte_rate=1234, data_size=n) + bytes(n))
    with pytest.raises(InvalidAudio, match="channel"):
        validate_wav(wav_header(channels=0, data_size=n) + bytes(n))
    with pytest.raises(InvalidAudio, match="whole number"):
        validate_wav(wav_header(data_size=n + 1) + bytes(n + 1))


def test_validate_walks_extra_chunks_and_extensible_format() -> None:
    wav = five_second_wav()
    info_chunk = b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\x00"  # odd size, padded
    body = wav[12:36] + info_chunk + wav[36:]
    with_list = b"RIFF" + struct.pack("<I", len(body) + 4) + b"WAVE" + body
    assert validate_wav(with_list).data_offset == 44 + len(info_chunk)

    pcm = wav[44:]
    guid = struct.pack("<H", 1) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, 1, 16000, 32000, 2, 16, 22, 16, 4) + guid
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(pcm))
    ext = b"RIFF" + struct.pack("<I", 4 + len(chunks) + len(pcm)) + b"WAVE" + chunks + pcm
    assert validate_wav(ext).duration_s == pytest.approx(5.0)
