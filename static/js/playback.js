// Reply audio: plays the 0x11 chunks of each response gaplessly, one response after another.
//
// mp3  -> Media Source Extensions: one MediaSource per response on a shared <audio> element,
//         chunks appended in seq order to an 'audio/mpeg' SourceBuffer (mode 'sequence'), so
//         frames split across chunks and the decoder state carry over: no gaps, no clicks.
//         Fallback when MSE lacks audio/mpeg: Web Audio decodeAudioData per chunk.
// pcm16 -> Web Audio: each chunk becomes an AudioBuffer (24 kHz mono by default) scheduled
//         back to back on the context clock.
//
// played_ms is the audio actually played for a response: audio.currentTime for MSE; for Web
// Audio the sum over scheduled buffers of how much of each has elapsed on the clock (so
// underrun gaps do not count). Every response that received audio is reported exactly once
// through onReport(responseId, playedMs, reason): when it finishes ('completed'), when it is
// stopped by barge-in or cancel ('barge_in', 'cancelled', 'stopped'), or with 0 when it was
// dropped before it started.

const TICK_MS = 100;
// Volume while the user may be talking over a reply. The server decides whether it is a
// barge-in (BARGE_IN_MIN_MS of speech) and then cancels the response; until then the reply
// goes on quietly, so a cough or a short "mm" does not cost the user the rest of it.
const DUCK_LEVEL = 0.25;

export function responseIdOf(num) {
  return `resp_${num}`;
}

export function responseNumOf(id) {
  const m = /(\d+)$/.exec(String(id ?? ''));
  return m ? Number(m[1]) : null;
}

export class ReplyPlayer {
  /**
   * @param {object} o
   * @param {HTMLAudioElement} o.audioEl element used for MSE playback
   * @param {(responseId: string, playedMs: number, reason: string) => void} o.onReport
   * @param {() => void} [o.onChange] playback state changed (playing, played ms)
   * @param {(kind: string, err?: any) => void} [o.onProblem] 'blocked' | 'decode'
   */
  constructor({ audioEl, onReport, onChange, onProblem }) {
    this.audioEl = audioEl;
    this.onReport = onReport;
    this.onChange = onChange || (() => {});
    this.onProblem = onProblem || (() => {});
    this.format = { format: 'mp3', rate: 24000 };
    this.enabled = true;
    this.paused = false;
    this.ctx = null;
    this.streams = new Map(); // response number -> stream
    this.queue = []; // streams waiting or playing, in arrival order
    this.closed = new Set(); // response numbers whose audio must be dropped
    this.endedEarly = new Set(); // audio done seen before any chunk
    this.lastPlayedMs = 0;
    this.lastResponseId = null;
    this.ducked = false;
    this.timer = null;
    this.mseOk =
      typeof MediaSource !== 'undefined' && MediaSource.isTypeSupported('audio/mpeg');
  }

  setFormat(fmt) {
    if (fmt && fmt.format) this.format = { format: fmt.format, rate: fmt.rate || 24000 };
  }

  /** Create or resume the AudioContext. Call from a user gesture when possible. */
  ensureContext() {
    if (!this.ctx) {
      try {
        this.ctx = new AudioContext({ latencyHint: 'interactive' });
      } catch {
        this.ctx = null;
      }
    }
    if (this.ctx && this.ctx.state === 'suspended' && !this.paused) {
      this.ctx.resume().catch(() => {});
    }
    return this.ctx;
  }

  /** After the browser blocked autoplay: retry on a user gesture. */
  unblock() {
    this.ensureContext();
    const cur = this.current;
    if (cur && cur.kind === 'mse' && cur.begun && !this.paused) {
      this.audioEl.play().catch(() => {});
    }
  }

  setEnabled(on) {
    this.enabled = !!on;
    if (!this.enabled) this.stopAll('disabled');
  }

  get current() {
    return this.queue.length ? this.queue[0] : null;
  }

  get playing() {
    const cur = this.current;
    return !!cur && cur.begun && cur.started && !this.paused && !cur.finished;
  }

  /** True when audio is playing or waiting to be played. */
  get busy() {
    return this.queue.length > 0;
  }

  get currentResponseId() {
    const cur = this.current;
    return cur ? cur.id : null;
  }

  get playedMs() {
    const cur = this.current;
    return cur && cur.begun ? cur.playedMs() : this.lastPlayedMs;
  }

  /** A 0x11 chunk arrived. */
  push(num, seq, bytes) {
    if (!this.enabled || this.closed.has(num) || this.format.format === 'none') return;
    let s = this.streams.get(num);
    if (!s) {
      const useMse = this.format.format === 'mp3' && this.mseOk;
      s = useMse
        ? new MseStream(this, num)
        : new WebAudioStream(this, num, this.format.format, this.format.rate);
      this.streams.set(num, s);
      this.queue.push(s);
      if (this.endedEarly.delete(num)) s.ended = true;
      this._prune();
    }
    s.chunks += 1;
    s.bytes += bytes.byteLength;
    s.pending.set(seq, bytes);
    if (s.nextSeq === null) s.nextSeq = seq;
    this._advance();
    s.pump();
  }

  /** No more audio will come for this response (response.audio.done / response.done). */
  endOfAudio(responseId) {
    const num = responseNumOf(responseId);
    if (num === null) return;
    const s = this.streams.get(num);
    if (!s) {
      if (!this.closed.has(num)) this.endedEarly.add(num);
      return;
    }
    s.ended = true;
    s.pump();
  }

  /** The response was cancelled: stop it at once if it is playing, drop it if queued. */
  cancel(responseId, reason = 'cancelled') {
    const num = responseNumOf(responseId);
    if (num === null) return;
    this.closed.add(num);
    const s = this.streams.get(num);
    if (s && !s.finished) this._finish(s, reason, true);
  }

  /** Stop everything now (barge-in, user stop, audio switched off). */
  stopAll(reason = 'stopped') {
    for (const s of [...this.queue]) {
      this.closed.add(s.num);
      this._finish(s, reason, true);
    }
  }

  /** Lower (true) or restore (false) the volume of everything playing now or later. */
  duck(on) {
    this.ducked = !!on;
    this.audioEl.volume = this.level;
    for (const st of this.queue) st.setLevel?.(this.level);
    this.onChange();
  }

  get level() {
    return this.ducked ? DUCK_LEVEL : 1;
  }

  pause() {
    this.paused = true;
    const cur = this.current;
    if (cur && cur.kind === 'mse' && cur.begun) this.audioEl.pause();
    if (this.ctx && this.ctx.state === 'running') this.ctx.suspend().catch(() => {});
    this.onChange();
  }

  resume() {
    this.paused = false;
    const cur = this.current;
    if (cur && cur.kind === 'mse' && cur.begun) this.audioEl.play().catch(() => {});
    if (this.ctx && this.ctx.state === 'suspended') this.ctx.resume().catch(() => {});
    this.onChange();
  }

  // ---- internals

  _advance() {
    const cur = this.current;
    if (cur && !cur.begun) {
      cur.begin();
      this._startTicking();
      this.onChange();
    }
  }

  _finish(s, reason, stopNow) {
    if (s.finished) return;
    const played = s.begun ? s.playedMs() : 0;
    s.finished = true;
    if (stopNow || reason !== 'completed') s.stop();
    else s.release();
    const wasCurrent = this.current === s;
    this.queue = this.queue.filter((x) => x !== s);
    this.closed.add(s.num);
    if (s.begun || wasCurrent) {
      this.lastPlayedMs = played;
      this.lastResponseId = s.id;
    }
    if (s.chunks > 0 && !s.reported) {
      s.reported = true;
      this.onReport(s.id, Math.round(played), reason);
    }
    if (this.queue.length === 0) this._stopTicking();
    this._advance();
    this.onChange();
  }

  _prune() {
    if (this.streams.size > 64) {
      for (const [num, s] of this.streams) {
        if (s.finished) this.streams.delete(num);
        if (this.streams.size <= 32) break;
      }
    }
  }

  _startTicking() {
    if (this.timer) return;
    this.timer = setInterval(() => this._tick(), TICK_MS);
  }

  _stopTicking() {
    clearInterval(this.timer);
    this.timer = null;
  }

  _tick() {
    const cur = this.current;
    if (!cur) {
      this._stopTicking();
      return;
    }
    if (cur.begun) cur.check();
    this.onChange();
  }
}

// ---------------------------------------------------------------------------------------------

class StreamBase {
  constructor(player, num) {
    this.player = player;
    this.num = num;
    this.id = responseIdOf(num);
    this.pending = new Map(); // seq -> ArrayBuffer
    this.nextSeq = null;
    this.chunks = 0;
    this.bytes = 0;
    this.ended = false; // no more data will come
    this.begun = false; // became the head of the queue and started consuming data
    this.started = false; // audio is audibly running
    this.finished = false;
    this.reported = false;
  }

  /** Take the next chunk in seq order; when data has ended, skip over seqs that never came. */
  takeNext() {
    if (this.pending.has(this.nextSeq)) {
      const b = this.pending.get(this.nextSeq);
      this.pending.delete(this.nextSeq);
      this.nextSeq += 1;
      return b;
    }
    if (this.ended && this.pending.size > 0) {
      this.nextSeq = Math.min(...this.pending.keys());
      return this.takeNext();
    }
    return null;
  }
}

class MseStream extends StreamBase {
  constructor(player, num) {
    super(player, num);
    this.kind = 'mse';
    this.ms = null;
    this.sb = null;
    this.url = null;
    this.eos = false;
    this.abort = new AbortController();
    this.lastT = -1;
    this.stuckSince = 0;
  }

  begin() {
    this.begun = true;
    const audio = this.player.audioEl;
    const ms = new MediaSource();
    this.ms = ms;
    this.url = URL.createObjectURL(ms);
    const sig = { signal: this.abort.signal };
    ms.addEventListener(
      'sourceopen',
      () => {
        if (this.finished) return;
        try {
          this.sb = ms.addSourceBuffer('audio/mpeg');
          this.sb.mode = 'sequence';
        } catch (err) {
          this.player.onProblem('decode', err);
          this.player._finish(this, 'error', true);
          return;
        }
        this.sb.addEventListener('updateend', () => this.pump(), sig);
        this.sb.addEventListener('error', () => this.player.onProblem('decode'), sig);
        this.pump();
      },
      { once: true, signal: this.abort.signal },
    );
    audio.addEventListener(
      'playing',
      () => {
        this.started = true;
        this.player.onChange();
      },
      sig,
    );
    audio.addEventListener('ended', () => this.player._finish(this, 'completed', false), sig);
    audio.addEventListener(
      'error',
      () => {
        this.player.onProblem('decode', audio.error);
        this.player._finish(this, 'error', true);
      },
      sig,
    );
    audio.src = this.url;
    if (!this.player.paused) {
      audio.play().catch((err) => {
        if (err && err.name === 'NotAllowedError') this.player.onProblem('blocked', err);
      });
    }
  }

  pump() {
    if (!this.begun || this.finished || !this.sb || this.sb.updating) return;
    if (this.ms.readyState !== 'open') return;
    const next = this.takeNext();
    if (next) {
      try {
        this.sb.appendBuffer(next);
      } catch (err) {
        this.player.onProblem('decode', err);
      }
      return;
    }
    if (this.ended && this.pending.size === 0 && !this.eos) {
      this.eos = true;
      try {
        this.ms.endOfStream();
      } catch {
        /* already ended */
      }
    }
  }

  playedMs() {
    return (this.player.audioEl.currentTime || 0) * 1000;
  }

  /** Called on each tick: a watchdog for streams whose 'ended' event never fires. */
  check() {
    const audio = this.player.audioEl;
    if (!this.eos || this.player.paused) {
      this.stuckSince = 0;
      this.lastT = -1;
      return;
    }
    if (audio.ended) {
      this.player._finish(this, 'completed', false);
      return;
    }
    const t = audio.currentTime;
    const advanced = t !== this.lastT;
    this.lastT = t;
    if (advanced) {
      this.stuckSince = 0;
      return;
    }
    if (!this.stuckSince) this.stuckSince = performance.now();
    if (performance.now() - this.stuckSince > 2000) this.player._finish(this, 'completed', false);
  }

  stop() {
    const audio = this.player.audioEl;
    audio.pause();
    this.release();
  }

  release() {
    this.abort.abort();
    const audio = this.player.audioEl;
    if (this.url && audio.src === this.url) {
      audio.removeAttribute('src');
      audio.load();
    }
    if (this.url) URL.revokeObjectURL(this.url);
    this.url = null;
    this.sb = null;
    this.ms = null;
  }
}

class WebAudioStream extends StreamBase {
  constructor(player, num, format, rate) {
    super(player, num);
    this.kind = 'webaudio';
    this.format = format; // 'pcm16' | 'mp3'
    this.rate = rate || 24000;
    this.segments = []; // {at, dur, src}
    this.nextTime = 0;
    this.carry = null; // odd trailing byte (pcm16) or undecodable bytes (mp3)
    this.decoding = Promise.resolve();
    this.inflight = 0;
    this.gain = null;
  }

  begin() {
    this.begun = true;
    const ctx = this.player.ensureContext();
    if (!ctx) {
      this.player.onProblem('decode', new Error('AudioContext unavailable'));
      this.player._finish(this, 'error', true);
      return;
    }
    if (ctx.state === 'suspended' && !this.player.paused) {
      ctx.resume().catch(() => this.player.onProblem('blocked'));
    }
    this.gain = ctx.createGain();
    this.gain.gain.value = this.player.level;
    this.gain.connect(ctx.destination);
    if (this.player.analyser) this.gain.connect(this.player.analyser); // the avatar's mouth
    this.pump();
  }

  pump() {
    if (!this.begun || this.finished) return;
    for (let b = this.takeNext(); b; b = this.takeNext()) {
      if (this.format === 'pcm16') this.schedulePcm(b);
      else this.decodeMp3(b);
    }
  }

  /** The chunk's bytes, after whatever the previous chunk left over. */
  withCarry(buf) {
    const bytes = new Uint8Array(buf);
    if (!this.carry) return bytes;
    const joined = new Uint8Array(this.carry.length + bytes.length);
    joined.set(this.carry);
    joined.set(bytes, this.carry.length);
    this.carry = null;
    return joined;
  }

  schedulePcm(buf) {
    const bytes = this.withCarry(buf);
    const n = bytes.length >> 1;
    if (bytes.length % 2) this.carry = bytes.slice(bytes.length - 1);
    if (n === 0) return;
    const dv = new DataView(bytes.buffer, bytes.byteOffset, n * 2);
    const ctx = this.player.ctx;
    const ab = ctx.createBuffer(1, n, this.rate);
    const ch = ab.getChannelData(0);
    for (let i = 0; i < n; i++) ch[i] = dv.getInt16(i * 2, true) / 32768;
    this.schedule(ab);
  }

  decodeMp3(buf) {
    this.inflight += 1;
    this.decoding = this.decoding.then(async () => {
      const bytes = this.withCarry(buf);
      try {
        const ab = await this.player.ctx.decodeAudioData(bytes.slice().buffer);
        if (!this.finished) this.schedule(ab);
      } catch {
        // Probably a partial frame: decode it together with the next chunk.
        this.carry = bytes.length < 2_000_000 ? bytes : null;
      } finally {
        this.inflight -= 1;
      }
    });
  }

  schedule(ab) {
    const ctx = this.player.ctx;
    const lead = this.segments.length === 0 ? 0.06 : 0.02;
    const at = Math.max(this.nextTime, ctx.currentTime + lead);
    const src = ctx.createBufferSource();
    src.buffer = ab;
    src.connect(this.gain);
    src.start(at);
    this.segments.push({ at, dur: ab.duration, src });
    this.nextTime = at + ab.duration;
    if (!this.started) {
      this.started = true;
      this.player.onChange();
    }
  }

  playedMs() {
    const ctx = this.player.ctx;
    if (!ctx) return 0;
    const now = ctx.currentTime;
    let s = 0;
    for (const seg of this.segments) {
      if (now <= seg.at) break;
      s += Math.min(now - seg.at, seg.dur);
    }
    return s * 1000;
  }

  check() {
    const ctx = this.player.ctx;
    if (!ctx || this.player.paused) return;
    const drained = this.ended && this.pending.size === 0 && this.inflight === 0;
    if (drained && ctx.currentTime >= this.nextTime) {
      this.player._finish(this, 'completed', false);
    }
  }

  setLevel(level) {
    const ctx = this.player.ctx;
    if (this.gain && ctx) this.gain.gain.setTargetAtTime(level, ctx.currentTime, 0.02);
  }

  stop() {
    for (const seg of this.segments) {
      try {
        seg.src.stop();
      } catch {
        /* not started */
      }
    }
    this.release();
  }

  release() {
    if (this.gain) {
      try {
        this.gain.disconnect();
      } catch {
        /* ignore */
      }
    }
    this.gain = null;
    this.segments = this.segments.map(({ at, dur }) => ({ at, dur, src: null }));
  }
}
