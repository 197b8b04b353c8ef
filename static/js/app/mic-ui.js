// The microphone controls: on/off, mute, the level meter and push to talk (../mic.js captures
// and resamples; this module decides what is sent).

import { $, state, settings, report } from './context.js';
import { t } from '../../i18n.js';
import { KIND } from '../ws-client.js';
import { MicCapture } from '../mic.js';
import { ws, send } from './socket.js';
import { unsupported } from './session.js';

let meterTarget = 0;
let meterShown = 0;
let meterAria = 0;
// Push to talk: frames go out only while the button (or Space) is held; release commits.
let pttSending = false;
let pttHeld = false;
let pttTail = null;
let pttWasMuted = false;

export const mic = new MicCapture({
  onFrame: (pcm) => {
    const ptt = settings.get('ptt');
    if (!state.connected || state.sessionStatus !== 'live') return;
    if ((ptt && !pttSending) || unsupported.mic) return;
    if (ws.sendBinary(KIND.MIC, pcm)) state.sent.micFrames += 1;
  },
  onLevel: (rms) => {
    // Speech RMS is ~0.01-0.3: show it on a dB-ish scale so quiet speech moves the bar.
    const db = rms > 0 ? 20 * Math.log10(rms) : -100;
    const level = Math.max(0, Math.min(1, (db + 60) / 60));
    state.mic.level = Math.round(level * 100) / 100;
    meterTarget = level;
  },
  onEnded: () => {
    syncMicUi();
  },
});

setInterval(() => {
  // Fast attack, slow release.
  meterShown = meterTarget > meterShown ? meterTarget : meterShown * 0.85 + meterTarget * 0.15;
  $('mic-meter-fill').style.transform = `scaleX(${meterShown.toFixed(3)})`;
  const v = Math.round(meterShown * 100);
  if (Math.abs(v - meterAria) >= 5) {
    meterAria = v;
    $('mic-meter').setAttribute('aria-valuenow', String(v));
  }
}, 50);

export async function startMic() {
  try {
    await mic.start(settings.micFlags());
  } catch (err) {
    const msg = err && err.name === 'AbortError' ? String(err.message) : `${err && err.name ? err.name : ''} ${err && err.message ? err.message : ''}`.trim();
    const key = err instanceof DOMException && /worklet|AudioWorklet/i.test(String(err.message)) ? 'err.worklet' : 'err.mic.denied';
    report('client', () => t(key, { message: msg }), { code: 'mic_failed', message: msg });
    syncMicUi();
    return false;
  }
  mic.setMuted(state.mic.muted);
  syncMicUi();
  return true;
}

export function stopMic() {
  mic.stop();
  syncMicUi();
}

export function setMuted(m) {
  state.mic.muted = !!m;
  mic.setMuted(state.mic.muted);
  syncMicUi();
}

export function syncMicUi() {
  state.mic.active = mic.active;
  state.mic.contextRate = mic.contextRate;
  state.mic.applied = mic.appliedSettings();
  state.mic.ptt = !!settings.get('ptt');
  const b = $('btn-mic');
  b.setAttribute('aria-pressed', String(mic.active));
  // Paused: the mic is open but nothing is sent, so it is not shown green.
  const paused = mic.active && state.sessionStatus === 'paused';
  b.dataset.paused = String(paused);
  $('btn-mic-state').textContent = t(paused ? 'mic.paused' : mic.active ? 'mic.on' : 'mic.off');
  const m = $('btn-mute');
  m.setAttribute('aria-pressed', String(state.mic.muted));
  m.textContent = t(state.mic.muted ? 'mic.unmute' : 'mic.mute');
  m.disabled = !mic.active;
  const ptt = !!settings.get('ptt');
  $('ptt-toggle').checked = ptt;
  $('btn-ptt').hidden = !ptt;
  $('ptt-hint').hidden = !ptt;
}

/** The push-to-talk label in the interface language (after a language switch). */
export function relabelPtt() {
  $('btn-ptt-label').textContent = t(pttHeld ? 'mic.ptt.talking' : 'mic.ptt.hold');
}

export async function pttDown() {
  if (!settings.get('ptt') || pttHeld || !state.connected) return;
  pttHeld = true;
  clearTimeout(pttTail);
  if (!mic.active) await startMic();
  pttWasMuted = state.mic.muted;
  if (pttWasMuted) mic.setMuted(false);
  pttSending = true;
  state.mic.talking = true;
  $('btn-ptt').classList.add('active');
  $('btn-ptt').setAttribute('aria-pressed', 'true');
  $('btn-ptt-label').textContent = t('mic.ptt.talking');
}

export function pttUp() {
  if (!pttHeld) return;
  pttHeld = false;
  state.mic.talking = false;
  $('btn-ptt').classList.remove('active');
  $('btn-ptt').setAttribute('aria-pressed', 'false');
  $('btn-ptt-label').textContent = t('mic.ptt.hold');
  // Keep sending ~120 ms so the last syllable (still inside the worklet) gets out, then commit.
  pttTail = setTimeout(() => {
    pttSending = false;
    if (pttWasMuted) mic.setMuted(true);
    if (send('input_audio.commit')) state.sent.commits += 1;
  }, 120);
}

function isTypingTarget(el) {
  if (!el) return false;
  const tag = el.tagName;
  return tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT' || el.isContentEditable;
}

document.addEventListener('keydown', (e) => {
  if (e.code !== 'Space' || !settings.get('ptt') || e.repeat) return;
  const el = document.activeElement;
  if (isTypingTarget(el)) return;
  // Space activates buttons, links and disclosure summaries: leave those alone.
  if (el && ['BUTTON', 'A', 'SUMMARY'].includes(el.tagName) && el.id !== 'btn-ptt') return;
  e.preventDefault();
  pttDown();
});
document.addEventListener('keyup', (e) => {
  if (e.code !== 'Space' || !pttHeld) return;
  e.preventDefault();
  pttUp();
});
window.addEventListener('blur', () => pttUp());

/** The mic, mute and push-to-talk buttons. */
export function wireMic() {
  $('btn-mic').addEventListener('click', async () => {
    if (mic.active) {
      stopMic();
      settings.set('micOn', false);
    } else {
      settings.set('micOn', true);
      await startMic();
    }
  });
  $('btn-mute').addEventListener('click', () => setMuted(!state.mic.muted));
  $('ptt-toggle').addEventListener('change', (e) => settings.set('ptt', e.target.checked));

  const ptt = $('btn-ptt');
  ptt.addEventListener('pointerdown', (e) => {
    e.preventDefault();
    ptt.setPointerCapture?.(e.pointerId);
    pttDown();
  });
  ptt.addEventListener('pointerup', () => pttUp());
  ptt.addEventListener('pointercancel', () => pttUp());
  ptt.addEventListener('keydown', (e) => {
    if ((e.code === 'Space' || e.key === 'Enter') && !e.repeat) {
      e.preventDefault();
      e.stopPropagation();
      pttDown();
    }
  });
  ptt.addEventListener('keyup', (e) => {
    if (e.code === 'Space' || e.key === 'Enter') {
      e.preventDefault();
      e.stopPropagation();
      pttUp();
    }
  });
  ptt.addEventListener('contextmenu', (e) => e.preventDefault());
}
