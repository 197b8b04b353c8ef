// WebSocket client for /v1/ws: JSON events, binary frames with a kind byte, keepalive pings,
// and automatic reconnect with exponential backoff (the caller supplies the URL each time, so
// a reconnect carries the current session_id and resumes the same session).

export const KIND = {
  MIC: 0x01,
  SCREEN: 0x02,
  CAMERA: 0x03,
  AUDIO_OUT: 0x11,
};

const PING_EVERY_MS = 15000;
const SILENCE_LIMIT_MS = 45000;

export class WsClient {
  /**
   * @param {object} o
   * @param {() => string} o.url builds the URL for each (re)connect
   * @param {(msg: object) => void} o.onEvent JSON events
   * @param {(kind: number, buf: ArrayBuffer) => void} o.onBinary binary frames
   * @param {(status: string, info?: object) => void} o.onStatus
   *        'connecting' | 'open' | 'reconnecting' {attempt, delayMs} | 'closed' {code, reason, willRetry}
   *        | 'gaveup'
   * @param {(dir: string, type: string) => void} [o.onLog]
   */
  constructor({ url, onEvent, onBinary, onStatus, onLog, maxAttempts = 20 }) {
    this.urlFn = url;
    this.onEvent = onEvent;
    this.onBinary = onBinary;
    this.onStatus = onStatus;
    this.onLog = onLog || (() => {});
    this.maxAttempts = maxAttempts;
    this.ws = null;
    this.attempt = 0;
    this.wanted = false; // true while the page wants a connection
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastRx = 0;
    this.outbox = []; // JSON messages that must survive a reconnect
  }

  get isOpen() {
    return !!this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  get bufferedAmount() {
    return this.ws ? this.ws.bufferedAmount : 0;
  }

  connect() {
    this.wanted = true;
    this.attempt = 0;
    this._open();
  }

  /** Successful session start/resume: the next failure starts the backoff from scratch. */
  resetBackoff() {
    this.attempt = 0;
  }

  /** Close on purpose; no reconnect. */
  close(code = 1000, reason = 'client closed') {
    this.wanted = false;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this._stopPing();
    if (this.ws) {
      try {
        this.ws.close(code, reason);
      } catch {
        /* ignore */
      }
    }
  }

  /** Stop retrying but leave an open socket alone (the server will close it). */
  stopReconnect() {
    this.wanted = false;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  sendJson(msg, { queue = false } = {}) {
    if (this.isOpen) {
      this.ws.send(JSON.stringify(msg));
      this.onLog('out', msg.type);
      return true;
    }
    if (queue) this.outbox.push(msg);
    return false;
  }

  /** Send kind byte + payload. Returns false when not open or when the socket is backed up. */
  sendBinary(kind, payload, { maxBuffered = 2_000_000 } = {}) {
    if (!this.isOpen || this.ws.bufferedAmount > maxBuffered) return false;
    const bytes = payload instanceof Uint8Array ? payload : new Uint8Array(payload);
    const out = new Uint8Array(bytes.byteLength + 1);
    out[0] = kind;
    out.set(bytes, 1);
    this.ws.send(out.buffer);
    return true;
  }

  _open() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    let ws;
    try {
      ws = new WebSocket(this.urlFn());
    } catch (err) {
      this.onStatus('closed', { code: 0, reason: String(err), willRetry: false });
      this.wanted = false;
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.onStatus(this.attempt === 0 ? 'connecting' : 'reconnecting', { attempt: this.attempt });

    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.lastRx = performance.now();
      this.onStatus('open');
      const pending = this.outbox.splice(0);
      for (const m of pending) this.sendJson(m, { queue: true });
      this._startPing();
    };
    ws.onmessage = (ev) => {
      if (ws !== this.ws) return;
      this.lastRx = performance.now();
      if (typeof ev.data === 'string') {
        let msg;
        try {
          msg = JSON.parse(ev.data);
        } catch {
          return;
        }
        if (msg && typeof msg.type === 'string') {
          this.onLog('in', msg.type);
          this.onEvent(msg);
        }
      } else if (ev.data instanceof ArrayBuffer && ev.data.byteLength > 0) {
        const kind = new Uint8Array(ev.data, 0, 1)[0];
        this.onBinary(kind, ev.data);
      }
    };
    ws.onclose = (ev) => {
      if (ws !== this.ws) return;
      this._stopPing();
      this.ws = null;
      const retryable = !(ev.code === 1008 || (ev.code >= 4400 && ev.code < 4500));
      const willRetry = this.wanted && retryable && this.attempt < this.maxAttempts;
      this.onStatus('closed', { code: ev.code, reason: ev.reason, willRetry });
      if (willRetry) {
        const base = Math.min(15000, 500 * 2 ** this.attempt);
        const delayMs = Math.round(base * (0.8 + Math.random() * 0.4));
        this.attempt += 1;
        this.onStatus('reconnecting', { attempt: this.attempt, delayMs });
        this.retryTimer = setTimeout(() => this._open(), delayMs);
      } else if (this.wanted) {
        this.wanted = false;
        this.onStatus('gaveup', { code: ev.code, reason: ev.reason });
      }
    };
    ws.onerror = () => {
      /* onclose follows and decides about retrying */
    };
  }

  _startPing() {
    this._stopPing();
    this.pingTimer = setInterval(() => {
      if (!this.isOpen) return;
      if (performance.now() - this.lastRx > SILENCE_LIMIT_MS) {
        // The server stopped answering: drop the socket and let onclose reconnect.
        try {
          this.ws.close(4000, 'keepalive timeout');
        } catch {
          /* ignore */
        }
        return;
      }
      this.sendJson({ type: 'ping' });
    }, PING_EVERY_MS);
  }

  _stopPing() {
    clearInterval(this.pingTimer);
    this.pingTimer = null;
  }
}

/** Parse a 0x11 audio frame: [kind][u32 BE response number][u32 BE seq][bytes]. */
export function parseAudioFrame(buf) {
  if (buf.byteLength < 9) return null;
  const dv = new DataView(buf);
  return {
    responseNum: dv.getUint32(1, false),
    seq: dv.getUint32(5, false),
    bytes: buf.slice(9),
  };
}
