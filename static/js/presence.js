// The persona card's face: a generated avatar (the persona's initials on a colour taken from
// its name; no external assets) whose state is listening, thinking or speaking. Its mouth
// takes the shape of the viseme the server's timeline names for the moment of the reply
// audio being played (response.audio.visemes: VRM aa ih ou ee oh per 0x11 chunk, looked up
// at the player's own audio clock), and shows the sentence's emotion (data-emotion). Where
// no timeline covers the moment, the mouth opens with the level of the audio playing (an
// AnalyserNode tapping the player's output: captureStream for MP3, the gain node for PCM16).

import { t } from '../i18n.js';

const STATES = ['idle', 'listening', 'thinking', 'speaking'];
// The mouth ellipse per viseme: [rx, ry at full opening] (closed: rx 7, ry 1.5).
const SHAPES = { aa: [7, 10], ih: [10, 3.5], ou: [3.5, 6], ee: [9, 5.5], oh: [5, 8] };
const CLOSED = [7, 1.5];
const KEEP_TIMELINES = 4; // replies whose timelines are kept (the one playing and the next)
const TRACE = 1500; // mouth samples kept in state for inspection (about 25 s at 60 fps)

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
    this.timelines = new Map(); // responseId -> [{keys, emotion, ms}] by 0x11 seq
    this.typed = null; // the last emotion marked in a reply's text
    this.rx = CLOSED[0];
    this.ry = CLOSED[1];
    Object.assign(this.state, { viseme: null, emotion: null, source: 'level', trace: [], timeline: null });
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

  /** The emotion the persona marked in a reply's text (response.emotion): shown while
   * no audio is played (a text-only session); with audio, the timelines carry it. */
  markEmotion(emotion) {
    this.typed = emotion || null;
  }

  /** The mouth timeline of 0x11 chunk `seq` of a reply (response.audio.visemes). */
  addVisemes(responseId, seq, keyframes, emotion) {
    let tl = this.timelines.get(responseId);
    if (!tl) {
      tl = [];
      this.timelines.set(responseId, tl);
      while (this.timelines.size > KEEP_TIMELINES) this.timelines.delete(this.timelines.keys().next().value);
    }
    const keys = (keyframes || []).map((k) => ({ ms: Number(k.duration) * 1000, targets: k.targets || {} }));
    tl[seq] = { keys, emotion: emotion || null, ms: keys.reduce((a, k) => a + k.ms, 0) };
    this.state.timeline = { responseId, chunks: tl.map((c) => c && c.keys.map((k) => [k.ms, k.targets])) };
  }

  /** The mouth at `ms` into a reply's audio: {viseme, opening, emotion}, or null when no
   * timeline covers that moment (a chunk's timeline not here yet). */
  at(responseId, ms) {
    const tl = this.timelines.get(responseId);
    if (!tl) return null;
    let start = 0;
    for (const c of tl) {
      if (!c) return null;
      if (ms < start + c.ms) {
        let k0 = start;
        for (const k of c.keys) {
          if (ms < k0 + k.ms) {
            const v = Object.keys(k.targets).find((name) => name in SHAPES) || null;
            return { viseme: v, opening: v ? k.targets[v] : 0, emotion: c.emotion };
          }
          k0 += k.ms;
        }
        return null;
      }
      start += c.ms;
    }
    return null;
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
    let shape = null;
    const playing = this.player.playing;
    const t = playing ? this.player.playedMs : 0;
    if (playing) {
      shape = this.at(this.player.currentResponseId, t);
      const a = shape ? null : this.tap();
      if (a) {
        a.getFloatTimeDomainData(this.buf);
        let sum = 0;
        for (const v of this.buf) sum += v * v;
        const rms = Math.sqrt(sum / this.buf.length);
        level = Math.max(0, Math.min(1, rms * 6));
      }
    }
    let rx;
    let ry;
    if (shape) {
      // The timeline decides: the viseme's shape, opened as far as it says.
      this.level = shape.opening;
      const [w, h] = shape.viseme ? SHAPES[shape.viseme] : CLOSED;
      rx = shape.viseme ? w : CLOSED[0];
      ry = shape.viseme ? CLOSED[1] + (h - CLOSED[1]) * shape.opening : CLOSED[1];
    } else {
      // Quick to open, slower to close, like a mouth.
      this.level = level > this.level ? level : this.level * 0.8 + level * 0.2;
      rx = CLOSED[0];
      ry = CLOSED[1] + this.level * 9;
    }
    this.rx = rx;
    this.ry = ry;
    const st = this.state;
    st.source = shape ? 'visemes' : 'level';
    st.viseme = shape ? shape.viseme : null;
    const silent = !this.player.enabled || this.player.format.format === 'none';
    const emotion = shape ? shape.emotion : playing ? st.emotion : silent ? this.typed || null : null;
    if (emotion !== st.emotion) {
      st.emotion = emotion;
      if (emotion) this.root.dataset.emotion = emotion;
      else delete this.root.dataset.emotion;
    }
    st.mouth = Math.round(this.level * 100) / 100;
    if (this.level > st.peak) st.peak = st.mouth;
    if (playing) {
      st.trace.push({ r: this.player.currentResponseId, t: Math.round(t), v: st.viseme, e: st.emotion, src: st.source, rx });
      if (st.trace.length > TRACE) st.trace.splice(0, st.trace.length - TRACE);
    }
    this.mouth.setAttribute('rx', rx.toFixed(2));
    this.mouth.setAttribute('ry', ry.toFixed(2));
  }
}
