"""In-memory audio conversion shared by STT, TTS, voice upload and voice analysis.

Everything runs on bytes and numpy arrays through PyAV (its bundled FFmpeg), so no temporary
files and no external ffmpeg binary are needed. Errors from bad input always surface as
`InvalidAudio`, a `ValueError`, so API layers can map them to a 400 in one place.
"""

from __future__ import annotations

import io
import logging
import struct
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

#: Sample rates the MP3 format can carry (MPEG-1, -2 and -2.5 layer III).
MP3_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)
DEFAULT_MAX_WAV_BYTES = 25 * 1024 * 1024

_WAVE_FORMAT_PCM = 0x0001
_WAVE_FORMAT_FLOAT = 0x0003
_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


class InvalidAudio(ValueError):
    """Raised when bytes are not decodable audio or break a validation rule."""


@dataclass(frozen=True, slots=True)
class WavInfo:
    """What `validate_wav` learned from a header, so callers need not parse it again."""

    sample_rate: int
    channels: int
    bits_per_sample: int
    sample_format: str  # "pcm" (integer) or "float"
    frames: int
    duration_s: float
    data_offset: int
    data_size: int


# --------------------------------------------------------------------------- raw PCM helpers


def pcm16_to_float(b: bytes | bytearray | memoryview) -> np.ndarray:
    """Little-endian PCM16 bytes -> float32 in [-1, 1) (the wire format of mic frames)."""
    raw = bytes(b)
    if len(raw) % 2:
        raise InvalidAudio(f"PCM16 data must have an even byte count, got {len(raw)}")
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(a: np.ndarray) -> bytes:
    """Float samples (clipped to [-1, 1]) -> little-endian PCM16 bytes."""
    x = np.nan_to_num(np.asarray(a, dtype=np.float32).reshape(-1), nan=0.0)
    return (np.clip(x, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


def write_wav(pcm16: bytes, rate: int, channels: int = 1) -> bytes:
    """Wrap PCM16 bytes in a canonical 44-byte RIFF/WAVE header."""
    if rate <= 0 or channels <= 0:
        raise InvalidAudio(f"bad WAV parameters: rate={rate} channels={channels}")
    block_align = channels * 2
    if len(pcm16) % block_align:
        raise InvalidAudio(f"PCM16 length {len(pcm16)} is not a multiple of {block_align}")
    header = struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        36 + len(pcm16),
        b"WAVE",
        b"fmt ",
        16,
        _WAVE_FORMAT_PCM,
        channels,
        rate,
        rate * block_align,
        block_align,
        16,
        b"data",
        len(pcm16),
    )
    return header + bytes(pcm16)


# --------------------------------------------------------------------------- WAV validation


def validate_wav(
    data: bytes,
    *,
    min_s: float = 3.0,
    max_s: float = 60.0,
    max_bytes: int = DEFAULT_MAX_WAV_BYTES,
    allow_float: bool = True,
) -> WavInfo:
    """Check that `data` really is a complete PCM WAV file of acceptable length.

    Used for voice-reference uploads, where a renamed MP3 or a truncated file must be
    refused before it reaches a voice-cloning backend that would fail much later.
    """
    n = len(data)
    if n > max_bytes:
        raise InvalidAudio(f"WAV file is {n} bytes, limit is {max_bytes}")
    if n < 12:
        raise InvalidAudio(f"file too short for a RIFF header ({n} bytes)")
    riff, riff_size, wave = struct.unpack_from("<4sI4s", data, 0)
    if riff != b"RIFF" or wave != b"WAVE":
        raise InvalidAudio(f"not a RIFF/WAVE file (starts with {bytes(data[:12])!r})")
    if riff_size + 8 > n + 1:  # +1 tolerates a missing final pad byte
        raise InvalidAudio(f"RIFF header claims {riff_size + 8} bytes but file has {n}: truncated")

    fmt: tuple[int, int, int, int, int, int] | None = None
    pos = 12
    while pos + 8 <= n:
        chunk_id, size = struct.unpack_from("<4sI", data, pos)
        body = pos + 8
        if chunk_id == b"fmt ":
            fmt = _parse_fmt(data, body, size)
        elif chunk_id == b"data":
            if fmt is None:
                raise InvalidAudio("data chunk found before fmt chunk")
            return _wav_info(fmt, body, size, n, min_s=min_s, max_s=max_s, allow_float=allow_float)
        pos = body + size + (size & 1)
    if fmt is None:
        raise InvalidAudio("no fmt chunk: truncated or not a WAV file")
    raise InvalidAudio("no data chunk: truncated or not a WAV file")


def _parse_fmt(data: bytes, body: int, size: int) -> tuple[int, int, int, int, int, int]:
    """Return (format_tag, channels, rate, byte_rate, block_align, bits) from a fmt chunk."""
    if size < 16 or body + 16 > len(data):
        raise InvalidAudio(f"fmt chunk too short ({size} bytes)")
    tag, channels, rate, byte_rate, block_align, bits = struct.unpack_from("<HHIIHH", data, body)
    if tag == _WAVE_FORMAT_EXTENSIBLE:
        # WAVEFORMATEXTENSIBLE: cbSize(2) validBits(2) channelMask(4) then the SubFormat GUID,
        # whose first two bytes are the real format tag.
        if size < 40 or body + 26 > len(data):
            raise InvalidAudio("WAVE_FORMAT_EXTENSIBLE fmt chunk too short")
        (tag,) = struct.unpack_from("<H", data, body + 24)
    return tag, channels, rate, byte_rate, block_align, bits


def _wav_info(
    fmt: tuple[int, int, int, int, int, int],
    offset: int,
    size: int,
    n: int,
    *,
    min_s: float,
    max_s: float,
    allow_float: bool,
) -> WavInfo:
    tag, channels, rate, byte_rate, block_align, bits = fmt
    if tag == _WAVE_FORMAT_PCM:
        kind = "pcm"
        if bits not in (8, 16, 24, 32):
            raise InvalidAudio(f"unsupported PCM bit depth {bits}")
    elif tag == _WAVE_FORMAT_FLOAT and allow_float:
        kind = "float"
        if bits not in (32, 64):
            raise InvalidAudio(f"unsupported float bit depth {bits}")
    else:
        raise InvalidAudio(f"unsupported WAV format tag 0x{tag:04x} (only PCM is accepted)")
    if not 1 <= channels <= 8:
        raise InvalidAudio(f"unsupported channel count {channels}")
    if not 8000 <= rate <= 192000:
        raise InvalidAudio(f"unsupported sample rate {rate}")
    if block_align != channels * bits // 8:
        raise InvalidAudio(f"inconsistent block align {block_align} for {channels}x{bits} bit")
    if byte_rate != rate * block_align:
        raise InvalidAudio(f"inconsistent byte rate {byte_rate} for {rate} Hz")
    if size == 0xFFFFFFFF or offset + size > n:
        raise InvalidAudio(f"data chunk claims {size} bytes but only {n - offset} present")
    if size % block_align:
        raise InvalidAudio(f"data size {size} is not a whole number of {block_align}-byte frames")
    frames = size // block_align
    duration = frames / rate
    if duration < min_s:
        raise InvalidAudio(f"audio is {duration:.2f} s long, minimum is {min_s:g} s")
    if duration > max_s:
        raise InvalidAudio(f"audio is {duration:.2f} s long, maximum is {max_s:g} s")
    return WavInfo(rate, channels, bits, kind, frames, duration, offset, size)


# --------------------------------------------------------------------------- PyAV codecs


def decode_audio(
    data: bytes, target_rate: int = 16000, *, max_s: float | None = None
) -> np.ndarray:
    """Decode any container/codec FFmpeg knows (wav, mp3, webm/opus, ogg...) to float32 mono.

    Audio is resampled to `target_rate` and downmixed. `max_s` stops decoding early so a huge
    upload cannot exhaust memory. A file that breaks mid-stream keeps what decoded cleanly.
    """
    if not data:
        raise InvalidAudio("empty audio data")
    if target_rate <= 0:
        raise ValueError(f"target_rate must be positive, got {target_rate}")
    import av  # lazily: PyAV (FFmpeg) is ~14 MB that only uploads and MP3 output use

    limit = None if max_s is None else int(max_s * target_rate)
    chunks: list[np.ndarray] = []
    total = 0
    try:
        container = av.open(io.BytesIO(bytes(data)), mode="r")
    except (av.FFmpegError, ValueError, OSError, IndexError) as exc:
        raise InvalidAudio(f"not a decodable audio file: {exc}") from exc
    with container:
        if not container.streams.audio:
            raise InvalidAudio("file contains no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=target_rate)
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    arr = out.to_ndarray().reshape(-1)
                    chunks.append(arr)
                    total += arr.size
                if limit is not None and total >= limit:
                    break
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except (av.FFmpegError, ValueError, OSError) as exc:
            if not chunks:
                raise InvalidAudio(f"audio stream could not be decoded: {exc}") from exc
            log.warning("audio decode stopped early after %d samples: %s", total, exc)
    if not chunks:
        raise InvalidAudio("no audio samples could be decoded")
    pcm = np.concatenate(chunks).astype(np.float32, copy=False)
    if pcm.size == 0:
        raise InvalidAudio("no audio samples could be decoded")
    return pcm[:limit] if limit is not None else pcm


def decode_to_pcm16(data: bytes, rate: int = 16000) -> bytes:
    """Decode any audio file to mono PCM16 bytes at `rate` (e.g. TTS output normalisation)."""
    return float_to_pcm16(decode_audio(data, rate))


def encode_mp3(
    pcm16: bytes, rate: int, *, bitrate: int = 64000, for_streaming: bool = False
) -> bytes:
    """Encode mono PCM16 to MP3 with LAME (PyAV's bundled FFmpeg ships libmp3lame).

    Rates MP3 cannot carry are resampled to the nearest one. `for_streaming` leaves out the
    ID3 tag and the Xing/LAME info frame so consecutive chunks concatenate into one valid
    MP3 stream. Empty input gives empty output.
    """
    samples = np.frombuffer(_even(pcm16), dtype="<i2")
    if samples.size == 0:
        return b""
    import av

    out_rate = rate if rate in MP3_RATES else min(MP3_RATES, key=lambda r: abs(r - rate))
    options = {"id3v2_version": "0", "write_xing": "0"} if for_streaming else {}
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp3", options=options) as container:
        stream = container.add_stream("libmp3lame", rate=out_rate, layout="mono")
        stream.bit_rate = bitrate
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        frames = [frame]
        if out_rate != rate:
            resampler = av.AudioResampler(format="s16", layout="mono", rate=out_rate)
            frames = [*resampler.resample(frame), *resampler.resample(None)]
        for f in frames:
            for packet in stream.encode(f):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


def _even(b: bytes | bytearray | memoryview) -> bytes:
    raw = bytes(b)
    if len(raw) % 2:
        raise InvalidAudio(f"PCM16 data must have an even byte count, got {len(raw)}")
    return raw
