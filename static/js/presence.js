// The persona card's face: a generated avatar (the persona's initials on a colour taken from
// its name; no external assets) whose state is listening, thinking or speaking, with a mouth
// that opens with the level of the reply audio actually playing (an AnalyserNode tapping the
// player's output: the <audio> element's captureStream for MP3, the gain node for PCM16).

import { t } from '../i18n.js';

const STATES = ['idle', 'listening', 'thinking', 'speaking'];

function hue(name) {
  let h = 0;
  for (const ch of String(name || '?')) h = (h * 31 + ch.codePointAt(0)) % 360;
  return h;
}

function initials(name) {
  const parts = String(name || '?').trim().split(/\s+/);
  const first = [...(parts[0] || '?')][0] || '?';
  const second = parts.length > 1 ? [...parts[parts.length - 1]][0] : '';
  return (first + second).toUpperCase();
}

export class Presence {
  constructor({ root, player, state }) {
    this.root = root;
    this.player = player;
    this.state = state; // window.studio.state.presence
    this.mouth = root.querySelector('[data-face="mouth"]');
    this.label = root.querySelector('[data-face="state"]');
    this.analyser = null;
    this.tapped = new WeakSet();
    this.buf = null;
    this.level = 0;
    this.set('idle');
    const tick = () => {
      this.frame();
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }

  setPersona(p) {
    const name = (p && (p.name || p.id)) || '?';
    this.root.style.setProperty('--avatar-hue', String(hue(name)));
    this.root.querySelector('[data-face="initials"]').textContent = initials(name);
    this.root.querySelector('[data-face="name"]').textContent = name;
    const img = this.root.querySelector('[data-face="image"]');
    // A persona file may carry its own picture as a data: URL; nothing is fetched elsewhere.
    const src = p && typeof p.avatar === 'string' && p.avatar.startsWith('data:image/') ? p.avatar : '';
    img.hidden = !src;
    if (src) img.src = src;
  }

  set(s) {
    if (!STATES.includes(s)) return;
    this.state.state = s;
    this.root.dataset.state = s;
    this.render();
  }

  render() {
    this.label.textContent = t(`presence.${this.state.state}`);
  }

  /** Lazily build the analyser and tap whatever the player is playing through. */
  tap() {
    const ctx = this.player.ctx;
    if (!ctx) return null;
    if (!this.analyser) {
      this.analyser = ctx.createAnalyser();
      this.analyser.fftSize = 512;
      this.buf = new Float32Array(this.analyser.fftSize);
      this.player.analyser = this.analyser; // PCM16 streams connect their gain node to it
    }
    const el = this.player.audioEl;
    if (!this.tapped.has(el) && typeof el.captureStream === 'function' && !el.paused) {
      try {
        const stream = el.captureStream();
        if (stream.getAudioTracks().length) {
          ctx.createMediaStreamSource(stream).connect(this.analyser);
          this.tapped.add(el);
        }
      } catch {
        /* no capture: the mouth stays on the speaking animation */
      }
    }
    return this.analyser;
  }

  frame() {
    let level = 0;
    if (this.player.playing) {
      const a = this.tap();
      if (a) {
        a.getFloatTimeDomainData(this.buf);
        let sum = 0;
        for (const v of this.buf) sum += v * v;
        const rms = Math.sqrt(sum / this.buf.length);
        level = Math.max(0, Math.min(1, rms * 6));
      }
    }
    // Quick to open, slower to close, like a mouth.
    this.level = level > this.level ? level : this.level * 0.8 + level * 0.2;
    this.state.mouth = Math.round(this.level * 100) / 100;
    if (this.level > this.state.peak) this.state.peak = this.state.mouth;
    this.mouth.setAttribute('ry', (1.5 + this.level * 9).toFixed(2));
  }
}
