// The session's life: start, pause, resume, end, typed turns, and what the server says about
// the session (created, updated, ended, errors).

import { $, state, settings, shared, cap, recordProblem, report, reportHref, toasts } from './context.js';
import { t, has, getLang } from '../../i18n.js';
import { conversation, perception, historyPanel } from './panels.js';
import { player, presence } from './audio-out.js';
import { ws, send, sendSessionUpdate, showConnection, connShown, restart } from './socket.js';
import { mic, startMic, stopMic, syncMicUi, pttUp } from './mic-ui.js';
import { stopCamera, stopScreen } from './vision-ui.js';

/** Media the server answered `not_supported` for: the page stops sending it. */
export const unsupported = { mic: false, camera: false, screen: false };
let endCloseTimer = null; // closes the ended session's socket (not a newer one)

export function onSessionCreated(s) {
  const resumed = !!state.sessionId && s.id === state.sessionId;
  if (resumed) state.resumed += 1;
  if (!resumed) {
    unsupported.mic = unsupported.camera = unsupported.screen = false;
    conversation.clear();
    perception.reset();
    state.transcripts.length = 0;
    state.replies.length = 0;
  }
  if (!resumed) state.sessionStartedAt = Date.now();
  state.sessionId = s.id || null;
  state.threadId = s.thread_id || null;
  state.userId = s.user_id || null;
  state.persona = s.persona || null;
  if (s.persona && s.persona.id) shared.personaForSession = s.persona.id; // a reconnect keeps it
  state.session = s;
  state.reportUrl = null;
  if (s.output_audio) {
    state.outputAudio = s.output_audio;
    player.setFormat(s.output_audio);
  }
  state.connected = true;
  ws.resetBackoff();
  if (s.persona && s.persona.name) conversation.setPersonaName(s.persona.name);
  presence.set('listening');
  const paused = s.status === 'paused' || (resumed && state.sessionStatus === 'paused');
  setSessionStatus(paused ? 'paused' : 'live');
  if (resumed && paused && s.status !== 'paused') send('session.pause');
  showConnection('open');
  $('report-link').hidden = true;
  // Every setting the page keeps goes to the server on start and on resume.
  sendSessionUpdate(settings.sessionPayload());
  if (settings.get('micOn') && !mic.active) startMic();
  updateButtons();
}

export function onSessionUpdated(s) {
  state.session = { ...(state.session || {}), ...s };
  if (s.output_audio) {
    state.outputAudio = s.output_audio;
    player.setFormat(s.output_audio);
  }
  if (['live', 'paused'].includes(state.sessionStatus)) {
    if (s.status === 'paused') setSessionStatus('paused');
    else if (s.status === 'active' || s.status === 'live') setSessionStatus('live');
  }
  if (s.persona && s.persona.id) {
    state.persona = s.persona;
    shared.personaForSession = s.persona.id;
    if (s.persona.name) conversation.setPersonaName(s.persona.name);
  }
}

export function onSessionEnded(msg) {
  state.reportUrl = msg.report_url || null;
  setSessionStatus('ended');
  state.connected = false;
  ws.stopReconnect();
  clearTimeout(endCloseTimer);
  endCloseTimer = setTimeout(() => ws.close(1000, 'session ended'), 200);
  stopDevices();
  player.stopAll('stopped');
  perception.reset(); // no stale readings once the session is over
  presence.set('idle');
  showConnection('ended');
  conversation.system(t('session.ended'));
  if (state.reportUrl) {
    $('report-link').querySelector('a').href = reportHref(state.reportUrl);
    $('report-link').hidden = false;
  }
  historyPanel.load();
  updateButtons();
}

export function onServerProblem(kind, msg) {
  const code = msg.code || '';
  if (kind === 'error' && msg.fatal && code === 'session_not_found' && state.sessionId) {
    // The old session cannot be resumed: when the socket closes, start a fresh one.
    recordProblem({ kind, code, message: msg.message || '', fatal: true, text: t('code.session_not_found') });
    toasts.show('warning', () => t('code.session_not_found'), { detail: msg.message });
    state.sessionId = null;
    restart.fresh = true;
    return;
  }
  // The server's English message is shown as is only in English; in Korean an unknown code
  // gets a Korean sentence and the message moves to the hover text (one language per line).
  const friendly = () => code && has(`code.${code}`)
    ? t(`code.${code}`)
    : getLang() === 'en'
      ? msg.message || code || kind
      : t(kind === 'warning' ? 'err.server.warning' : 'err.server.error');
  const fatal = kind === 'error' && !!msg.fatal;
  const words = () => (fatal ? t('err.fatal', { message: friendly() }) : friendly());
  // the server's own message on hover (in any language the toast is later redrawn in)
  const detail = msg.message || undefined;
  recordProblem({ kind, code: code || null, message: msg.message || '', fatal, text: words() });
  toasts.show(kind, words, { sticky: fatal, detail });
  if (code === 'not_supported') {
    // Stop sending what the server cannot take (it answers every frame with this error).
    const m = String(msg.message || '');
    if (/audio/i.test(m)) unsupported.mic = true;
    if (/camera/i.test(m)) unsupported.camera = true;
    if (/screen/i.test(m)) unsupported.screen = true;
  }
  if (fatal) {
    ws.stopReconnect();
    if (code === 'session_ended') {
      setSessionStatus('ended');
      stopDevices();
    } else setSessionStatus('idle');
    updateButtons();
  }
}

export function setSessionStatus(s) {
  state.sessionStatus = s;
  const info = $('session-info');
  const label = has(`session.state.${s}`) ? t(`session.state.${s}`) : '';
  // In words ("With Emma Clarke since 13:02 · Live"); the id only on hover, for support.
  const who = (state.persona && (state.persona.name || state.persona.id)) || '';
  const since = state.sessionStartedAt
    ? new Date(state.sessionStartedAt).toLocaleTimeString(getLang() === 'ko' ? 'ko-KR' : 'en-US', { hour: '2-digit', minute: '2-digit' })
    : '';
  info.textContent = state.sessionId
    ? `${t('session.with', { persona: who, time: since })}${label ? ` · ${label}` : ''}`
    : t('session.none');
  info.title = state.sessionId ? t('session.id', { id: state.sessionId }) : '';
  info.dataset.state = s;
  if (state.connection === 'open' && connShown.kind === 'open') showConnection('open');
  syncMicUi();
  updateButtons();
}

export function start() {
  const persona = $('persona-select').value || settings.get('persona');
  if (!persona) {
    report('error', () => t('err.noPersona'), { code: 'no_persona' });
    return false;
  }
  if (['connecting', 'live', 'paused'].includes(state.sessionStatus)) return false;
  player.ensureContext(); // inside the click: lets audio play later
  if (endCloseTimer) {
    // Started again right after End: close the old socket now, not the new one later.
    clearTimeout(endCloseTimer);
    endCloseTimer = null;
    ws.close(1000, 'session ended');
  }
  shared.personaForSession = persona;
  state.sessionId = null;
  state.reportUrl = null;
  state.connected = false;
  setSessionStatus('connecting');
  ws.connect();
  return true;
}

/** Pause or resume a session in the other state; false when it is not. */
function setPaused(paused) {
  if (state.sessionStatus !== (paused ? 'live' : 'paused')) return false;
  send(paused ? 'session.pause' : 'session.resume');
  if (paused) player.pause();
  else player.resume();
  setSessionStatus(paused ? 'paused' : 'live');
  return true;
}

export const pause = () => setPaused(true);
export const resume = () => setPaused(false);

export function end() {
  if (!['live', 'paused', 'connecting'].includes(state.sessionStatus) && state.connection !== 'reconnecting') return false;
  player.stopAll('stopped');
  if (ws.isOpen && state.connected) {
    send('session.end');
    setSessionStatus('ending');
    // If session.ended does not come back, close anyway.
    setTimeout(() => {
      if (state.sessionStatus === 'ending') onSessionEnded({});
    }, 5000);
  } else {
    ws.close();
    setSessionStatus('ended');
    stopDevices();
  }
  return true;
}

export function sendText(text) {
  const s = String(text || '').trim();
  if (!s) return false;
  if (!state.connected) {
    report('error', () => t('err.notConnected'), { code: 'not_connected' });
    return false;
  }
  if (state.sessionStatus === 'paused') {
    report('warning', () => t('code.session_paused'), { code: 'session_paused' });
    return false;
  }
  send('input_text', { text: s });
  state.sent.texts += 1;
  cap(state.typed, s);
  conversation.typed(s);
  presence.set('thinking');
  return true;
}

export function cancelReply() {
  send('response.cancel');
  player.stopAll('stopped');
}

export function updateButtons() {
  const st = state.sessionStatus;
  const active = ['connecting', 'live', 'paused', 'ending'].includes(st) || state.connection === 'reconnecting';
  $('btn-start').disabled = active;
  $('btn-pause').disabled = st !== 'live';
  $('btn-resume').disabled = st !== 'paused';
  $('btn-end').disabled = !active || st === 'ending';
  $('btn-pause').hidden = st === 'paused';
  $('btn-resume').hidden = st !== 'paused';
  $('composer-send').disabled = !state.connected;
  $('btn-ptt').disabled = !state.connected;
}

export function stopDevices() {
  pttUp();
  stopMic();
  stopCamera();
  stopScreen();
}

/** The session buttons and the composer. */
export function wireSession() {
  $('btn-start').addEventListener('click', start);
  $('btn-pause').addEventListener('click', pause);
  $('btn-resume').addEventListener('click', resume);
  $('btn-end').addEventListener('click', end);
  $('btn-stop-reply').addEventListener('click', cancelReply);

  const input = $('composer-input');
  $('composer').addEventListener('submit', (e) => {
    e.preventDefault();
    if (sendText(input.value)) input.value = '';
    input.focus();
  });
  input.addEventListener('keydown', (e) => {
    // Enter sends; Shift+Enter is a new line; never while an IME (Korean) is composing.
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      $('composer').requestSubmit();
    }
  });
}
