"""The companion must not hear itself: its reply, played by the client's speakers, comes
back in the mic delayed, quieter and mixed with room noise. WebRTC's AEC3 (``pywebrtc-audio``)
removes it, given the far-end signal: the reply audio this server sent, placed on the mic
timeline where the client played it.

Placement: a reply's audio starts at the mic position where the server received its
``response.audio.played`` with ``played_ms: 0`` (or, until that report comes, where its first
chunk was sent); later chunks follow back to back. AEC3's own delay estimator absorbs the
rest (the sound card's latency, the network), afresh for each reply: AEC3 restarts when a
reply starts playing, as a filter converged on the last reply's delay cancels only ~5 of
~25 dB of the next one's echo for a second or more when that delay moved by 90 ms. When a
reply is cancelled (a barge-in or the client's ``response.cancel``) its reference stops
shortly after, and so does an older reply's when a newer one starts playing: a reference
the speakers no longer play would hide the echo that is there. Away from any reply the
mic audio passes through untouched.

Headphones: AEC3 assumes an echo path and, while the reply plays, attenuates the user's
voice by about 12 dB when there is none. So the canceller measures the coupling: every
0.4 s of reply, the peak normalised cross-correlation of the raw mic with the reference
over 0-300 ms of lag. Below ``COUPLING_MIN`` with a loud enough reference (the first
measurement of a session, or three in a row after an echo was found: one window can
straddle two replies) means no echo reaches the mic, and the mic passes through untouched
until two measurements in a row find an echo again, at the same lag (the user's own voice
can correlate with the reply's by chance, but at a new lag each time). Before the first
measurement (0.7 s into the first reply) the mic is held back: a stop word said then was
lost whole, over headphones to the suppressor, over speakers to AEC3's unconverged start.
Once the coupling is decided (no
echo: the first low measurement; an echo: two high ones at one lag, 1.1 s in; at most
``HOLD_SAMPLES``), the held stretch goes on as it was (no echo) or through a fresh AEC3 run
over it twice (the second pass starts converged), then the mic is live again; the VAD hears
those words up to 0.7-1.1 s late, once a session. This holds for a client that never
reports playback too (every OpenAI Realtime client: its reply is placed where it was
sent): passed through raw, the first second of its echo was speech, a barge-in and a
transcript ("The quake round four."). AEC3 adapts from the first sample either way.

One per session; ``process`` runs in the VAD worker thread, ``add``/``anchor``/``cut`` on
the event loop, so the reference is guarded by a lock."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

RATE = 16_000
TAIL_SAMPLES = RATE  # keep cancelling this long after the reference ends (room reverb)
MEASURE_SAMPLES = RATE * 4 // 10  # coupling measured over each 0.4 s of reply
MAX_LAG = RATE * 3 // 10  # speaker -> mic delays up to 300 ms
LAG_JITTER = RATE // 500  # 2 ms: two high measurements at one lag are an echo path
COUPLING_MIN = 0.3  # a user talking with no echo path correlates with the reply up to ~0.2
UNCOUPLED_AFTER = 3  # this many low measurements in a row (one can straddle two replies)
STOP_SAMPLES = RATE // 5  # a cancelled reply goes on playing this long (the client hears of it)
FAR_MIN_RMS = 0.01  # a quieter reference (a pause in the reply) measures nothing
HOLD_SAMPLES = RATE * 3 // 2  # the first reply's mic waits this long at most for a measurement


@dataclass
class _Reply:
    start: int  # mic sample where its playback starts
    chunks: list[np.ndarray] = field(default_factory=list)
    samples: int = 0
    anchored: bool = False  # placed by the client's played_ms: 0 report
    closed: bool = False  # cut: no more of it plays

    @property
    def end(self) -> int:
        return self.start + self.samples


class EchoCanceller:
    def __init__(self) -> None:
        from pywebrtc_audio import AudioProcessor

        self._ap = AudioProcessor(sample_rate=RATE, echo_cancellation=True)
        self._replies: dict[int, _Reply] = {}
        self._resamplers: dict[int, object] = {}
        self._lock = threading.Lock()
        self.processed_samples = 0
        self.coupled: bool | None = None  # None: not measured yet (pass through meanwhile)
        self.coupling: float | None = None
        self._near_hist: list[np.ndarray] = []
        self._far_hist: list[np.ndarray] = []
        self._hist = 0
        self._low = 0  # low coupling measurements in a row
        self._lag: int | None = None  # the last high measurement's lag
        self._restart = False  # reset AEC3 before the next frame
        self._held: list[tuple[np.ndarray, np.ndarray]] = []  # (mic, reference) until measured
        self._held_samples = 0
        self._hold_done = False

    # --- the far end (event loop) ---------------------------------------------------------
    def add(self, number: int, pcm: bytes, rate: int, mic_sample: int) -> None:
        """Reply ``number`` sent this PCM16 audio (at ``rate``) while the mic was at
        ``mic_sample``."""
        audio = self._to_16k(number, pcm, rate)
        with self._lock:
            r = self._replies.get(number)
            if r is None:
                r = self._replies[number] = _Reply(start=mic_sample)
            if r.closed:  # sent after it was cut: the client drops it
                return
            r.chunks.append(audio)
            r.samples += audio.size

    def anchor(self, number: int, mic_sample: int) -> None:
        """The client started playing reply ``number`` when the mic was at ``mic_sample``:
        whatever older reply it played has stopped by then."""
        with self._lock:
            r = self._replies.get(number)
            if r is None or r.anchored:
                return
            r.start, r.anchored = mic_sample, True
            self._restart = True
            for k, old in self._replies.items():
                if k < number and old.end > mic_sample:
                    self._truncate(old, mic_sample)

    def cut(self, number: int, mic_sample: int) -> None:
        """Reply ``number`` was cancelled: the client stops it about now."""
        with self._lock:
            r = self._replies.get(number)
            if r is not None and r.end > mic_sample:
                self._truncate(r, mic_sample + STOP_SAMPLES)

    @staticmethod
    def _truncate(r: _Reply, mic_sample: int) -> None:
        keep = max(0, mic_sample - r.start)
        audio = np.concatenate(r.chunks)[:keep] if r.chunks else np.zeros(0, np.float32)
        r.chunks, r.samples = [audio], audio.size
        r.closed = True

    def active(self, mic_sample: int) -> bool:
        """A reply plays (or just played) around this mic position."""
        with self._lock:
            return any(r.start <= mic_sample < r.end + TAIL_SAMPLES for r in self._replies.values())

    # --- the near end (VAD worker thread) -------------------------------------------------
    def process(self, pcm: bytes, mic_sample: int) -> bytes:
        """Mic PCM16 starting at ``mic_sample`` -> the same with the reply's echo removed.
        Over the start of the session's first reply the output waits (see ``_release``):
        what comes out is always the mic's samples in order, some of them later."""
        n = len(pcm) // 2
        far = self._far(mic_sample, n)
        if far is None:
            return self._release() + pcm
        if self._restart:  # a new reply plays: its delay may differ from the last one's
            self._restart = False
            self._ap.reset()
            self._near_hist, self._far_hist, self._hist, self._lag = [], [], 0, None
        near = np.frombuffer(pcm, dtype="<i2")
        self._measure(near, far)
        out = self._ap.process(near.copy(), (far * 32767).astype(np.int16))
        self.processed_samples += n
        cancelled = np.asarray(out, dtype="<i2").tobytes()
        if self.coupled is None and not self._hold_done:
            if self._held_samples < HOLD_SAMPLES:  # not known yet: raw or cancelled?
                with self._lock:
                    self._held.append((near, far))
                    self._held_samples += n
                return b""
            self._hold_done = True  # undecided this long: cancel (and hold no more)
        released = self._release()
        if self.coupled is False:
            return released + pcm  # the filter keeps adapting, but nothing is taken from the user
        return released + cancelled

    def _release(self) -> bytes:
        """The mic held over the start of the first reply, until the measurements say
        whether an echo reaches the mic. None does: the raw mic, whole (AEC3, assuming an
        echo path, would have taken the user's voice over it). One does (or it could not
        be told): a fresh AEC3 run twice over the stretch, the second pass's output: its
        first pass found the delay and the filter, so the user over that echo is double
        talk, not the unconverged suppressor's silence."""
        with self._lock:
            held, self._held, self._held_samples = self._held, [], 0
        if not held:
            return b""
        near = np.concatenate([h[0] for h in held])
        far = (np.concatenate([h[1] for h in held]) * 32767).astype(np.int16)
        if self.coupled is False:
            return near.tobytes()
        from pywebrtc_audio import AudioProcessor

        ap = AudioProcessor(sample_rate=RATE, echo_cancellation=True)
        ap.process(near.copy(), far)
        return np.asarray(ap.process(near.copy(), far), dtype="<i2").tobytes()

    def take_held(self) -> bytes:
        """The held mic now, as decided so far (a commit ends the utterance: it is part of
        it); the mic after it is held again until the measurement."""
        return self._release()

    def drop_held(self) -> None:
        """Forget the held mic (a clear drops every frame sent before it)."""
        with self._lock:
            self._held, self._held_samples = [], 0

    def _measure(self, near: np.ndarray, far: np.ndarray) -> None:
        self._near_hist.append(near.astype(np.float32) / 32768)
        self._far_hist.append(far)
        self._hist += near.size
        if self._hist < MEASURE_SAMPLES + MAX_LAG:
            return
        x = np.concatenate(self._near_hist)
        y = np.concatenate(self._far_hist)
        self._near_hist, self._far_hist, self._hist = [x[-MAX_LAG:]], [y[-MAX_LAG:]], MAX_LAG
        ref = y[: x.size - MAX_LAG]  # echo of ref[i] appears at x[i + lag]
        if np.sqrt(np.mean(ref**2)) < FAR_MIN_RMS:
            return
        size = 1 << int(np.ceil(np.log2(x.size + ref.size)))
        corr = np.fft.irfft(np.fft.rfft(x, size) * np.conj(np.fft.rfft(ref, size)), size)
        peak = float(np.max(np.abs(corr[: MAX_LAG + 1])))
        # normalise by the reference and the mic energy in the same (lagged) window
        best = int(np.argmax(np.abs(corr[: MAX_LAG + 1])))
        seg = x[best : best + ref.size]
        norm = float(np.sqrt(np.sum(ref**2) * np.sum(seg**2))) or 1.0
        self.coupling = peak / norm
        lag, self._lag = self._lag, best
        if self.coupling >= COUPLING_MIN:
            self._low = 0
            # an echo path keeps its delay; the user's voice correlating with the reply's by
            # chance (the same synthetic voice in tests) peaks at a new lag each time
            if lag is not None and abs(best - lag) <= LAG_JITTER:
                self.coupled = True
        else:
            self._lag = None
            self._low += 1
            if self._low >= UNCOUPLED_AFTER or self.coupled is None:
                self.coupled = False

    def _far(self, at: int, n: int) -> np.ndarray | None:
        """The reference for mic samples [at, at + n), if a reply plays in them."""
        with self._lock:
            live = {k: r for k, r in self._replies.items() if r.end + TAIL_SAMPLES > at}
            self._replies = live
            if not any(r.start < at + n for r in live.values()):
                return None
            far = np.zeros(n, np.float32)
            for r in live.values():
                lo, hi = max(at, r.start), min(at + n, r.end)
                if lo < hi:
                    audio = np.concatenate(r.chunks)
                    r.chunks = [audio]
                    far[lo - at : hi - at] += audio[lo - r.start : hi - r.start]
            return far

    def _to_16k(self, number: int, pcm: bytes, rate: int) -> np.ndarray:
        import av

        rs = self._resamplers.get(number)
        if rs is None:
            rs = self._resamplers[number] = av.AudioResampler(
                format="s16", layout="mono", rate=RATE
            )
        arr = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(arr, format="s16", layout="mono")
        frame.sample_rate = rate
        out = [f.to_ndarray().reshape(-1) for f in rs.resample(frame)]  # type: ignore[attr-defined]
        if not out:
            return np.zeros(0, np.float32)
        return np.concatenate(out).astype(np.float32) / 32768
