// DesktopMate Studio: wires the page together. Modules:
//   i18n.js (strings), charts.js (canvas charts), audio-worklet.js (mic resampler),
//   js/ws-client.js (socket + reconnect), js/mic.js, js/playback.js, js/vision.js,
//   js/perception.js, js/conversation.js, js/history.js, js/reminders.js, js/settings.js,
//   js/api.js, js/toast.js
//
// Browser tests read window.studio.state (shape below, each field commented) and may drive the
// page with window.studio.{start, pause, resume, end, sendText, cancelReply, startMic, stopMic,
// setMuted, pttDown, pttUp, startCamera, stopCamera, startScreen, stopScreen, setSetting}.
// window.studio.ready turns true (and <html data-ready="1">) once personas, voices and health
// have loaded. Settings: localStorage 'dmp.settings' (JSON) and URL overrides, see
// js/settings.js (e.g. ?rawmic=1 turns echo cancellation, noise suppression and AGC off).

import { setLang, getLang, t, has, onLangChange } from './i18n.js';
import { Settings } from './js/settings.js';
import { makeApi } from './js/api.js';
import { WsClient, KIND, parseAudioFrame } from './js/ws-client.js';
import { MicCapture } from './js/mic.js';
import { ReplyPlayer, responseIdOf } from './js/playback.js';
import { CameraCapture, ScreenCapture } from './js/vision.js';
import { PerceptionPanel } from './js/perception.js';
import { Conversation } from './js/conversation.js';
import { HistoryPanel } from './js/history.js';
import { RemindersPanel } from './js/reminders.js';
import { MemoryPanel, toolResultText } from './js/memories.js';
import { Toasts } from './js/toast.js';
import { LiveStatus } from './js/status.js';
import { Dashboard } from './js/dashboard.js';
import { Presence } from './js/presence.js';

const $ = (id) => document.getElementById(id);
const MAX_LIST = 500;

// ---------------------------------------------------------------------------------------------
// Observable state (read by browser tests; the page never reads it back to decide things that
// the modules already know, except where noted).

const state = {
  connected: false, // socket open and session.created received
  connection: 'idle', // 'idle' | 'connecting' | 'open' | 'reconnecting' | 'closed'
  sessionStatus: 'idle', // 'idle' | 'connecting' | 'live' | 'paused' | 'ending' | 'ended'
  sessionId: null,
  sessionStartedAt: null, // ms, when this page's session was created (shown as a time)
  threadId: null,
  userId: null,
  persona: null, // {id, name} from session.created
  outputAudio: null, // {format, rate} from session.created / session.updated
  session: null, // last session object from the server
  reportUrl: null,
  reconnects: 0,
  resumed: 0, // times a reconnect resumed the same session id

  playing: false,
  ducked: false, // reply volume lowered while the user may be talking over it
  playingResponseId: null,
  playedMs: 0, // of the response playing now, else of the last one played
  lastResponseId: null,
  lastResponseStatus: null,
  audioChunksReceived: 0,
  audioBytesReceived: 0,
  playedReports: [], // {response_id, played_ms, reason} as sent in response.audio.played

  userSpeaking: false,
  transcripts: [], // {itemId, text, final}
  typed: [], // texts sent with input_text
  replies: [], // {responseId, text, status, timings, usage, audioChunks, audioDone, playedMs}
  perception: {
    face: null, // last analysis.face
    voice: null, // last analysis.voice
    vision: null, // last vision.description
    faceCount: 0,
    voiceCount: 0,
    visionCount: 0,
  },
  errors: [], // {kind: 'error'|'warning'|'client', code, message, fatal, text}
  reminders: [],
  tools: [], // response.tool_call / response.tool_result events, newest last

  mic: { active: false, muted: false, ptt: false, talking: false, level: 0, contextRate: null, applied: null },
  camera: { active: false },
  screen: { active: false, lastDiff: null },
  sent: { micFrames: 0, cameraFrames: 0, screenFrames: 0, screenSkipped: 0, texts: 0, commits: 0 },
  eventCounts: {}, // server event type -> count
  log: [], // last events {dir: 'in'|'out', type, t}
  health: null, // {online, modules, details, progress, needsSetup, test}: the live status
  healthProblems: [], // details of the modules not ready: which model, why, the fix
  presence: { state: 'idle', mouth: 0, peak: 0 }, // the avatar: state and mouth opening 0..1
  dashboard: { loaded: false }, // {loaded, range, days, totals, personas} after a load
  view: 'studio', // 'studio' | 'dashboard'
  savedDefaults: null, // the last PUT /v1/settings answer
};

const settings = new Settings();
const api = makeApi(() => settings.get('token'));
const toasts = new Toasts({
  politeRegion: $('toasts-status'),
  alertRegion: $('toasts-alert'),
  statusLine: $('status-line'),
});

let personas = [];
let liveStatus = null; // set below, once its elements exist
let serverDefaults = {}; // GET /v1/settings: the user's defaults for new sessions
let personaForSession = null;

function cap(list, item) {
  list.push(item);
  if (list.length > MAX_LIST) list.splice(0, list.length - MAX_LIST);
}

/** Record a problem in state.errors (a repeat of the last one only bumps its count). */
function recordProblem(entry) {
  const last = state.errors[state.errors.length - 1];
  if (last && last.kind === entry.kind && last.code === entry.code && last.message === entry.message) {
    last.count += 1;
    return;
  }
  cap(state.errors, { ...entry, count: 1, at: Date.now() });
}

/** A problem noticed by the page itself (mic denied, server unreachable, ...). */
function report(kind, text, extra = {}) {
  recordProblem({ kind: kind === 'client' ? 'client' : kind, code: extra.code || null, message: extra.message || text, fatal: !!extra.fatal, text });
  toasts.show(kind === 'client' ? 'error' : kind, text, { sticky: !!extra.fatal, detail: extra.detail });
}

// ---------------------------------------------------------------------------------------------
// Conversation, perception, history

const conversation = new Conversation($('conv-log'), $('conv-empty'));
const perception = new PerceptionPanel($('perception-panel'));
const historyPanel = new HistoryPanel({
  listEl: $('history-list'),
  moreBtn: $('history-more'),
  messagesEl: $('history-messages'),
  messagesHeading: $('history-messages-heading'),
  searchEl: $('history-search'),
  api,
  reportHref: (url) => reportHref(url),
  personaName: (id) => {
    const p = personas.find((x) => x.id === id);
    return p ? p.name : null;
  },
  onError: (what, err) => restError(what, err),
});

const remindersPanel = new RemindersPanel({
  form: $('reminder-form'),
  textEl: $('reminder-text'),
  minutesEl: $('reminder-minutes'),
  listEl: $('reminder-list'),
  api,
  onError: (what, err) => restError(what, err),
});

const memoryPanel = new MemoryPanel({
  listEl: $('memory-list'),
  clearBtn: $('memory-clear'),
  api,
  onError: (what, err) => restError(what, err),
});

/** A plain link cannot send the Authorization header: the HTML report with the token in the
 * query (the server accepts either). */
function reportHref(reportUrl) {
  const url = new URL(`${reportUrl}.html`, location.href);
  const token = settings.get('token');
  if (token) url.searchParams.set('token', token);
  return url.pathname + url.search;
}

/** A failed REST call in the interface language: the server's `code` when it sent one and the
 * page knows it, else what failed in plain words; the server's own message only on hover. */
function restError(what, err) {
  const code = err && err.data && typeof err.data.code === 'string' ? err.data.code : null;
  const message = err && err.message ? err.message : String(err);
  let text;
  if (err && (err.status === 401 || err.status === 403) && !(code && has(`code.${code}`))) text = t('code.unauthorized');
  else if (code && has(`code.${code}`)) text = t(`code.${code}`);
  else if (err && err.status === 0) text = t('err.rest.offline', { what: t(has(`what.${what}`) ? `what.${what}` : what) });
  else text = t('err.rest', { what: t(has(`what.${what}`) ? `what.${what}` : what), message: err && err.status ? `HTTP ${err.status}` : '' });
  report('error', text, { code: code || (err && err.status ? `http_${err.status}` : 'network'), message, detail: message });
}

/** "Stop reply" works while a reply is being generated or its audio is playing. */
function syncStopButton() {
  const generating = state.replies.some((r) => r.status === 'in_progress');
  $('btn-stop-reply').disabled = !(player.busy || (generating && state.connected));
}

function replyEntry(responseId) {
  let r = state.replies.find((x) => x.responseId === responseId);
  if (!r) {
    r = { responseId, text: '', status: 'in_progress', timings: null, usage: null, audioChunks: 0, audioDone: false, audioDurationMs: null, playedMs: null, playReason: null };
    cap(state.replies, r);
  }
  return r;
}

// ---------------------------------------------------------------------------------------------
// Reply audio

let blockedShown = false;
let presence = null; // the avatar (needs the player)
const player = new ReplyPlayer({
  audioEl: $('reply-audio'),
  onReport: (responseId, playedMs, reason) => {
    const msg = { type: 'response.audio.played', response_id: responseId, played_ms: playedMs };
    ws.sendJson(msg, { queue: true });
    cap(state.playedReports, { response_id: responseId, played_ms: playedMs, reason });
    const r = replyEntry(responseId);
    r.playedMs = playedMs;
    r.playReason = reason;
    if (r.status === 'cancelled') showHeard(r);
  },
  onChange: () => {
    state.playing = player.playing;
    state.ducked = player.ducked;
    state.playingResponseId = player.playing ? player.currentResponseId : null;
    state.playedMs = Math.round(player.playedMs);
    conversation.setPlaying(state.playingResponseId);
    if (presence) {
      if (state.playing) presence.set('speaking');
      else if (state.presence.state === 'speaking') presence.set(state.sessionStatus === 'live' ? 'listening' : 'idle');
    }
    syncStopButton();
    $('playing-indicator').hidden = !state.playing;
  },
  onProblem: (kind) => {
    if (kind === 'blocked') {
      if (!blockedShown) {
        blockedShown = true;
        report('warning', t('err.audio.blocked'), { code: 'autoplay_blocked' });
      }
      document.addEventListener(
        'pointerdown',
        () => {
          blockedShown = false;
          player.unblock();
        },
        { once: true },
      );
    } else {
      report('warning', t('err.audio.decode'), { code: 'audio_decode' });
    }
  },
});
player.setEnabled(settings.get('audioOut'));
presence = new Presence({ root: $('presence'), player, state: state.presence });

const dashboard = new Dashboard({
  root: $('dashboard'),
  api,
  state: state.dashboard,
  personaName: (id) => (personas.find((x) => x.id === id) || {}).name,
  onError: (what, err) => restError(what, err),
});

/** #dashboard shows the usage dashboard instead of the studio. */
function route() {
  const dash = location.hash === '#dashboard';
  state.view = dash ? 'dashboard' : 'studio';
  $('dashboard').hidden = !dash;
  $('studio-view').hidden = dash;
  $('tab-dashboard').toggleAttribute('aria-current', dash);
  $('tab-studio').toggleAttribute('aria-current', !dash);
  if (dash) {
    $('tab-dashboard').setAttribute('aria-current', 'page');
    dashboard.load();
  } else $('tab-studio').setAttribute('aria-current', 'page');
}
window.addEventListener('hashchange', route);

// ---------------------------------------------------------------------------------------------
// WebSocket

function wsUrl() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const q = new URLSearchParams();
  if (personaForSession) q.set('persona', personaForSession);
  if (state.sessionId) q.set('session_id', state.sessionId);
  const token = settings.get('token');
  if (token) q.set('token', token);
  return `${proto}//${location.host}/v1/ws?${q.toString()}`;
}

let reconnectTimer = null;
let connShown = { kind: 'idle', until: 0, attempt: 0 };
function showConnection(kind, info = {}) {
  clearInterval(reconnectTimer);
  const el = $('conn-text');
  $('conn-dot').dataset.state = kind;
  if (kind === 'reconnecting') {
    const until = info.delayMs ? performance.now() + info.delayMs : connShown.until;
    const attempt = info.attempt || connShown.attempt;
    connShown = { kind, until, attempt };
    const tick = () => {
      const s = Math.max(0, Math.ceil((until - performance.now()) / 1000));
      el.textContent = t('conn.reconnecting', { s, n: attempt });
    };
    tick();
    reconnectTimer = setInterval(tick, 1000);
    return;
  }
  connShown = { kind, until: 0, attempt: 0 };
  // Server gone and no socket: say "offline" rather than a stale state.
  if (kind !== 'open' && liveStatus && liveStatus.online === false) {
    $('conn-dot').dataset.state = 'offline';
    el.textContent = t('conn.offline');
    return;
  }
  el.textContent = kind === 'open' && state.sessionStatus === 'paused' ? t('conn.paused') : t(`conn.${kind}`);
}

const ws = new WsClient({
  url: wsUrl,
  onEvent: (msg) => handleEvent(msg),
  onBinary: (kind, buf) => handleBinary(kind, buf),
  onLog: (dir, type) => {
    cap(state.log, { dir, type, t: Math.round(performance.now()) });
    if (state.log.length > 300) state.log.splice(0, state.log.length - 300);
  },
  onStatus: (status, info = {}) => {
    if (status === 'connecting') {
      state.connection = 'connecting';
      showConnection('connecting');
    } else if (status === 'open') {
      state.connection = 'open';
      showConnection('open');
    } else if (status === 'reconnecting') {
      state.connection = 'reconnecting';
      if (info.delayMs) {
        state.reconnects += 1;
        showConnection('reconnecting', info);
      }
    } else if (status === 'closed') {
      state.connected = false;
      state.connection = 'closed';
      if (!info.willRetry && !restartFresh) {
        // A normal End closes the socket on purpose: not a red "Disconnected".
        showConnection(state.sessionStatus === 'ended' ? 'ended' : 'closed');
        if (state.sessionStatus !== 'ended' && state.sessionStatus !== 'connecting') setSessionStatus('idle');
      }
    } else if (status === 'gaveup' && restartFresh) {
      restartFresh = false;
      ws.connect();
    } else if (status === 'gaveup') {
      state.connection = 'closed';
      showConnection(state.sessionStatus === 'ended' ? 'ended' : 'closed');
      if (state.sessionStatus !== 'ended') {
        setSessionStatus('idle');
        report('error', t('err.ws.gaveup'), { code: 'ws_unreachable' });
      }
    }
    updateButtons();
  },
});

function send(type, body = {}) {
  return ws.sendJson({ type, ...body });
}

function sendSessionUpdate(session) {
  if (!state.connected || !session || Object.keys(session).length === 0) return false;
  return send('session.update', { session });
}

// ---------------------------------------------------------------------------------------------
// Server events

function handleEvent(msg) {
  state.eventCounts[msg.type] = (state.eventCounts[msg.type] || 0) + 1;
  switch (msg.type) {
    case 'session.created':
      onSessionCreated(msg.session || {});
      break;
    case 'session.updated':
      onSessionUpdated(msg.session || {});
      break;
    case 'session.ended':
      onSessionEnded(msg);
      break;
    case 'input_audio.speech_started':
      state.userSpeaking = true;
      if (!player.busy) presence.set('listening');
      $('speaking').hidden = false;
      // Maybe a barge-in: the server decides (BARGE_IN_MIN_MS) and then cancels the reply,
      // which stops it here; until then it plays on quietly.
      if (player.busy) player.duck(true);
      break;
    case 'input_audio.speech_stopped':
      state.userSpeaking = false;
      $('speaking').hidden = true;
      player.duck(false);
      break;
    case 'transcript.delta': {
      const text = msg.text ?? msg.delta ?? '';
      upsertTranscript(msg.item_id, text, false);
      conversation.userPartial(msg.item_id, text);
      break;
    }
    case 'transcript.done':
      upsertTranscript(msg.item_id, msg.text ?? '', true);
      if (msg.text && !player.busy) presence.set('thinking');
      conversation.userFinal(msg.item_id, msg.text ?? '');
      break;
    case 'response.created': {
      const r = replyEntry(msg.response_id);
      r.status = 'in_progress';
      state.lastResponseId = msg.response_id;
      conversation.replyStart(msg.response_id);
      if (!player.busy) presence.set('thinking');
      syncStopButton();
      break;
    }
    case 'response.text.delta': {
      const r = replyEntry(msg.response_id);
      r.text += msg.delta || '';
      conversation.replyDelta(msg.response_id, msg.delta || '');
      break;
    }
    case 'response.audio.done': {
      const r = replyEntry(msg.response_id);
      r.audioDone = true;
      r.audioDurationMs = msg.duration_ms ?? null;
      player.endOfAudio(msg.response_id);
      break;
    }
    case 'response.done': {
      const r = replyEntry(msg.response_id);
      r.status = msg.status;
      if (typeof msg.text === 'string') r.text = msg.text;
      r.timings = msg.timings || null;
      r.usage = msg.usage || null;
      state.lastResponseId = msg.response_id;
      state.lastResponseStatus = msg.status;
      conversation.replyDone(msg.response_id, msg);
      if (!player.busy && state.presence.state === 'thinking') presence.set('listening');
      if (msg.status === 'cancelled') {
        player.cancel(msg.response_id, state.userSpeaking ? 'barge_in' : 'cancelled');
      }
      else player.endOfAudio(msg.response_id);
      syncStopButton();
      break;
    }
    case 'analysis.face':
      state.perception.face = msg;
      state.perception.faceCount += 1;
      perception.onFace(msg);
      break;
    case 'analysis.voice':
      state.perception.voice = msg;
      state.perception.voiceCount += 1;
      perception.onVoice(msg);
      break;
    case 'vision.description':
      state.perception.vision = msg;
      state.perception.visionCount += 1;
      perception.onVision(msg);
      break;
    case 'response.tool_call':
      cap(state.tools, msg);
      break;
    case 'response.tool_result': {
      cap(state.tools, msg);
      const words = toolResultText(msg);
      msg.words = words;
      conversation.system(words);
      if (msg.name.startsWith('schedule_') && $('reminders-details').open) remindersPanel.load();
      if (msg.name.endsWith('_memory') && $('memories-details').open) memoryPanel.load();
      break;
    }
    case 'reminder':
      // Shown once, in the conversation (no toast repeating it); the list drops it.
      cap(state.reminders, msg);
      if ($('reminders-details').open) remindersPanel.load(); // it is no longer pending
      conversation.system(t('conv.reminder', { text: msg.text }));
      break;
    case 'server.status':
      liveStatus.apply(msg);
      break;
    case 'error':
      onServerProblem('error', msg);
      break;
    case 'warning':
      onServerProblem('warning', msg);
      break;
    case 'pong':
      state.lastPong = Date.now();
      break;
    default:
      break;
  }
}

/** After a barge-in the server stores only what was heard (settled by our played report):
 * show that stored text instead of everything that was sent, as history will. */
async function showHeard(r, tries = 3) {
  const sessionId = state.sessionId;
  for (let i = 0; i < tries && sessionId; i++) {
    await new Promise((res) => setTimeout(res, 400 * (i + 1)));
    let msgs;
    try {
      msgs = await api.messages(sessionId, 500);
    } catch {
      return;
    }
    const last = [...msgs].reverse().find((m) => m.role === 'assistant');
    if (last && last.interrupted && last.content !== r.text) {
      r.heard = last.content;
      conversation.setReplyText(r.responseId, last.content);
      return;
    }
  }
}

function upsertTranscript(itemId, text, final) {
  const tr = state.transcripts.find((x) => x.itemId === itemId);
  if (tr) {
    tr.text = text;
    tr.final = final;
  } else cap(state.transcripts, { itemId, text, final });
}

function handleBinary(kind, buf) {
  if (kind !== KIND.AUDIO_OUT) return;
  const f = parseAudioFrame(buf);
  if (!f) return;
  state.audioChunksReceived += 1;
  state.audioBytesReceived += f.bytes.byteLength;
  replyEntry(responseIdOf(f.responseNum)).audioChunks += 1;
  player.push(f.responseNum, f.seq, f.bytes);
}

function onSessionCreated(s) {
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
  if (s.persona && s.persona.id) personaForSession = s.persona.id; // a reconnect keeps it
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

function onSessionUpdated(s) {
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
    personaForSession = s.persona.id;
    if (s.persona.name) conversation.setPersonaName(s.persona.name);
  }
}

function onSessionEnded(msg) {
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

let restartFresh = false;
let endCloseTimer = null; // closes the ended session's socket (not a newer one)
const unsupported = { mic: false, camera: false, screen: false }; // server said not_supported

function onServerProblem(kind, msg) {
  const code = msg.code || '';
  if (kind === 'error' && msg.fatal && code === 'session_not_found' && state.sessionId) {
    // The old session cannot be resumed: when the socket closes, start a fresh one.
    recordProblem({ kind, code, message: msg.message || '', fatal: true, text: t('code.session_not_found') });
    toasts.show('warning', t('code.session_not_found'), { detail: msg.message });
    state.sessionId = null;
    restartFresh = true;
    return;
  }
  // The server's English message is shown as is only in English; in Korean an unknown code
  // gets a Korean sentence and the message moves to the hover text (one language per line).
  const friendly = code && has(`code.${code}`)
    ? t(`code.${code}`)
    : getLang() === 'en'
      ? msg.message || code || kind
      : t(kind === 'warning' ? 'err.server.warning' : 'err.server.error');
  const detail = friendly !== msg.message && msg.message ? msg.message : undefined;
  const fatal = kind === 'error' && !!msg.fatal;
  const text = fatal ? t('err.fatal', { message: friendly }) : friendly;
  recordProblem({ kind, code: code || null, message: msg.message || '', fatal, text });
  toasts.show(kind, text, { sticky: fatal, detail });
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

// ---------------------------------------------------------------------------------------------
// Session controls

function setSessionStatus(s) {
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

function start() {
  const persona = $('persona-select').value || settings.get('persona');
  if (!persona) {
    report('error', t('err.noPersona'), { code: 'no_persona' });
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
  personaForSession = persona;
  state.sessionId = null;
  state.reportUrl = null;
  state.connected = false;
  setSessionStatus('connecting');
  ws.connect();
  return true;
}

function pause() {
  if (state.sessionStatus !== 'live') return false;
  send('session.pause');
  player.pause();
  setSessionStatus('paused');
  return true;
}

function resume() {
  if (state.sessionStatus !== 'paused') return false;
  send('session.resume');
  player.resume();
  setSessionStatus('live');
  return true;
}

function end() {
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

function sendText(text) {
  const s = String(text || '').trim();
  if (!s) return false;
  if (!state.connected) {
    report('error', t('err.notConnected'), { code: 'not_connected' });
    return false;
  }
  if (state.sessionStatus === 'paused') {
    report('warning', t('code.session_paused'), { code: 'session_paused' });
    return false;
  }
  send('input_text', { text: s });
  state.sent.texts += 1;
  cap(state.typed, s);
  conversation.typed(s);
  presence.set('thinking');
  return true;
}

function cancelReply() {
  send('response.cancel');
  player.stopAll('stopped');
}

function updateButtons() {
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

// ---------------------------------------------------------------------------------------------
// Microphone

const mic = new MicCapture({
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

let meterTarget = 0;
let meterShown = 0;
let meterAria = 0;
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

async function startMic() {
  try {
    await mic.start(settings.micFlags());
  } catch (err) {
    const msg = err && err.name === 'AbortError' ? String(err.message) : `${err && err.name ? err.name : ''} ${err && err.message ? err.message : ''}`.trim();
    const key = err instanceof DOMException && /worklet|AudioWorklet/i.test(String(err.message)) ? 'err.worklet' : 'err.mic.denied';
    report('client', t(key, { message: msg }), { code: 'mic_failed', message: msg });
    syncMicUi();
    return false;
  }
  mic.setMuted(state.mic.muted);
  syncMicUi();
  return true;
}

function stopMic() {
  mic.stop();
  syncMicUi();
}

function setMuted(m) {
  state.mic.muted = !!m;
  mic.setMuted(state.mic.muted);
  syncMicUi();
}

function syncMicUi() {
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

// Push to talk: frames go out only while the button (or Space) is held; release commits.
let pttSending = false;
let pttHeld = false;
let pttTail = null;
let pttWasMuted = false;

async function pttDown() {
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

function pttUp() {
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

// ---------------------------------------------------------------------------------------------
// Camera and screen

const wantVision = () => state.connected && state.sessionStatus === 'live';
const camera = new CameraCapture({
  video: $('camera-video'),
  onFrame: (jpeg) => {
    if (!wantVision() || unsupported.camera) return false;
    const ok = ws.sendBinary(KIND.CAMERA, jpeg);
    if (ok) state.sent.cameraFrames += 1;
    return ok;
  },
  onEnded: () => syncVisionUi(),
});
camera.enabled = wantVision;
const screenCap = new ScreenCapture({
  video: $('screen-video'),
  onFrame: (jpeg) => {
    if (!wantVision() || unsupported.screen) return false;
    const ok = ws.sendBinary(KIND.SCREEN, jpeg);
    if (ok) state.sent.screenFrames += 1;
    return ok;
  },
  onEnded: () => syncVisionUi(),
});
screenCap.enabled = wantVision;

async function startCamera() {
  try {
    await camera.start(Number(settings.get('cameraFps')) || 2);
  } catch (err) {
    report('client', t('err.camera.denied', { message: err && err.message ? err.message : String(err) }), { code: 'camera_failed' });
  }
  syncVisionUi();
}

function stopCamera() {
  camera.stop();
  syncVisionUi();
}

async function startScreen() {
  try {
    await screenCap.start(Number(settings.get('screenFps')) || 0.5);
  } catch (err) {
    report('client', t('err.screen.denied', { message: err && err.message ? err.message : String(err) }), { code: 'screen_failed' });
  }
  syncVisionUi();
}

function stopScreen() {
  screenCap.stop();
  syncVisionUi();
}

function syncVisionUi() {
  state.camera.active = camera.active;
  state.screen.active = screenCap.active;
  $('btn-camera').setAttribute('aria-pressed', String(camera.active));
  $('btn-screen').setAttribute('aria-pressed', String(screenCap.active));
  $('camera-video').hidden = !camera.active;
  $('screen-video').hidden = !screenCap.active;
  $('previews').hidden = !camera.active && !screenCap.active;
}

setInterval(() => {
  state.sent.screenSkipped = screenCap.skipped;
  state.screen.lastDiff = screenCap.lastDiff;
  const stats = $('screen-stats');
  stats.hidden = !screenCap.active;
  if (screenCap.active) stats.textContent = t('screen.sent', { n: state.sent.screenFrames });
}, 1000);

function stopDevices() {
  pttUp();
  stopMic();
  stopCamera();
  stopScreen();
}

// ---------------------------------------------------------------------------------------------
// Personas, voices, health

function renderPersonaCard() {
  const id = $('persona-select').value;
  const p = personas.find((x) => x.id === id);
  const card = $('persona-card');
  card.hidden = !p;
  presence.setPersona(p || { name: id });
  if (!p) return;
  card.querySelector('[data-p="name"]').textContent = p.name || p.id;
  card.querySelector('[data-p="description"]').textContent = p.description || '';
  const set = (k, v) => {
    const dd = card.querySelector(`[data-p="${k}"]`);
    dd.textContent = v === undefined || v === null || v === '' ? t('perc.none') : String(v);
  };
  set('language', p.language);
  set('age', p.age);
  set('mbti', p.mbti);
  set('occupation', p.occupation);
}

async function loadPersonas() {
  const sel = $('persona-select');
  sel.replaceChildren(new Option(t('persona.loading'), ''));
  sel.disabled = true;
  let serverDefault = null;
  try {
    ({ personas, default: serverDefault } = await api.personaList());
  } catch (err) {
    personas = [];
    restError('personas', err);
  }
  sel.replaceChildren();
  if (personas.length === 0) {
    sel.append(new Option(t('persona.none'), ''));
    const wanted = settings.get('persona');
    if (wanted) sel.append(new Option(wanted, wanted, true, true));
  }
  for (const p of personas) {
    const lang = p.language ? ` (${p.language})` : '';
    sel.append(new Option(`${p.name || p.id}${lang}`, p.id));
  }
  // A ?persona= link, else the user's saved default (GET /v1/settings), else this browser's
  // last choice, else the server's DEFAULT_PERSONA; the first one only if none of those exist.
  const has_ = (id) => id && [...sel.options].some((o) => o.value === id);
  const order = [settings.overrides.persona, serverDefaults.persona, settings.stored.persona, serverDefault];
  const pick = order.find(has_);
  if (pick) sel.value = pick;
  else if (personas.length) sel.value = personas[0].id;
  sel.disabled = false;
  renderPersonaCard();
  historyPanel.render();
}

let voices = [];
async function loadVoices() {
  try {
    voices = await api.voices();
  } catch (err) {
    voices = [];
    // Not fatal: the persona default voice still works. Say so once, quietly.
    report('warning', t('err.rest', { what: t('what.voices'), message: err.status ? `HTTP ${err.status}` : '—' }), { code: 'voices_unavailable', detail: err.message });
  }
  renderVoices();
}

function renderVoices() {
  const sel = $('set-voice');
  const current = settings.get('voice');
  sel.replaceChildren(new Option(t('settings.voice.default'), ''));
  const byLang = new Map();
  for (const v of voices) {
    const k = v.language || '?';
    if (!byLang.has(k)) byLang.set(k, []);
    byLang.get(k).push(v);
  }
  for (const [lang, list] of [...byLang.entries()].sort()) {
    const g = document.createElement('optgroup');
    g.label = lang;
    for (const v of list) g.append(new Option(`${v.name || v.id} · ${v.provider || ''}`.replace(/ · $/, ''), v.id));
    sel.append(g);
  }
  if (current && ![...sel.options].some((o) => o.value === current)) sel.append(new Option(current, current));
  sel.value = current || '';
}

liveStatus = new LiveStatus({
  api,
  pillEl: $('health'),
  setupEl: $('setup-card'),
  onChange: (ls) => {
    state.health = { online: ls.online, modules: ls.modules, details: ls.details, progress: ls.progress, needsSetup: ls.needsSetup, test: ls.lastTest };
    state.healthProblems = ls.problemDetails;
    if (ls.online === false && state.connection !== 'open') showConnection(connShown.kind);
    else if (ls.online && $('conn-dot').dataset.state === 'offline') showConnection(connShown.kind);
  },
});

// ---------------------------------------------------------------------------------------------
// The user's defaults for new sessions, kept on the server (GET/PUT /v1/settings)

const DEFAULT_KEYS = { temperature: 'temperature', maxTokens: 'max_tokens', instructions: 'instructions', instructionsMode: 'instructions_mode', voice: 'voice' };
let applyingDefaults = false;

/** Saved defaults fill the form (a ?persona= or other URL override still wins for this load). */
async function loadServerDefaults() {
  try {
    serverDefaults = await api.userSettings();
  } catch {
    serverDefaults = {};
    return;
  }
  applyingDefaults = true;
  for (const [key, field] of Object.entries(DEFAULT_KEYS)) {
    const v = serverDefaults[field];
    if (v !== undefined && v !== null && !(key in settings.overrides)) settings.set(key, String(v));
  }
  applyingDefaults = false;
  fillSettingsForm();
}

let saveTimer = null;
/** Every choice is saved as the default for new sessions (debounced). */
function scheduleSaveDefaults() {
  if (applyingDefaults) return;
  $('settings-saved').textContent = ''; // until this change is stored
  clearTimeout(saveTimer);
  saveTimer = setTimeout(saveDefaults, 400);
}

async function saveDefaults() {
  const v = settings.values;
  const persona = $('persona-select').value;
  // PUT replaces the whole object: keep what other parts of the app saved (proactive speech,
  // time zone, ...) and set only the fields this form owns.
  const body = Object.fromEntries(Object.entries(serverDefaults || {}).filter(([, x]) => x !== null && x !== undefined));
  for (const f of ['persona', 'voice', 'instructions', 'temperature', 'max_tokens']) delete body[f];
  if (persona && personas.some((p) => p.id === persona)) body.persona = persona;
  if (v.voice) body.voice = v.voice;
  if (v.instructions && v.instructions.trim()) body.instructions = v.instructions.trim();
  body.instructions_mode = v.instructionsMode === 'replace' ? 'replace' : 'append';
  const temp = parseFloat(v.temperature);
  if (v.temperature !== '' && Number.isFinite(temp)) body.temperature = temp;
  const mt = parseInt(v.maxTokens, 10);
  if (v.maxTokens !== '' && Number.isFinite(mt)) body.max_tokens = mt;
  const status = $('settings-saved');
  try {
    serverDefaults = await api.saveUserSettings(body);
    state.savedDefaults = serverDefaults;
    status.textContent = t('settings.saved');
  } catch (err) {
    status.textContent = '';
    restError('settings', err);
  }
}

function syncInstructionsHint() {
  const replace = settings.get('instructionsMode') === 'replace';
  $('set-instructions-hint').textContent = t(replace ? 'settings.instructions.replace.hint' : 'settings.instructions.append.hint');
  $('set-instructions-label').textContent = t(replace ? 'settings.instructions.replace' : 'settings.instructions.append');
}

// ---------------------------------------------------------------------------------------------
// Settings form

const FIELDS = [
  // [element id, settings key, kind]
  ['set-token', 'token', 'text'],
  ['set-temperature', 'temperature', 'text'],
  ['set-max-tokens', 'maxTokens', 'text'],
  ['set-instructions', 'instructions', 'text'],
  ['set-instructions-mode', 'instructionsMode', 'text'],
  ['set-voice', 'voice', 'text'],
  ['set-audio-out', 'audioOut', 'check'],
  ['set-audio-format', 'audioFormat', 'text'],
  ['set-camera-fps', 'cameraFps', 'number'],
  ['set-screen-fps', 'screenFps', 'number'],
  ['set-silence', 'silenceMs', 'text'],
  ['set-echo', 'echoCancellation', 'check'],
  ['set-noise', 'noiseSuppression', 'check'],
  ['set-agc', 'autoGainControl', 'check'],
  ['set-lang', 'lang', 'text'],
];

function fillSettingsForm() {
  for (const [id, key, kind] of FIELDS) {
    const el = $(id);
    const v = settings.get(key);
    if (kind === 'check') el.checked = !!v;
    else if (id !== 'set-voice') el.value = v === undefined || v === null ? '' : String(v);
  }
  $('set-lang').value = getLang();
  syncInstructionsHint();
}

function bindSettingsForm() {
  for (const [id, key, kind] of FIELDS) {
    const el = $(id);
    const ev = kind === 'check' || el.tagName === 'SELECT' ? 'change' : 'change';
    el.addEventListener(ev, () => {
      if (kind === 'check') settings.set(key, el.checked);
      else if (kind === 'number') {
        const n = parseFloat(el.value);
        if (Number.isFinite(n) && n > 0) settings.set(key, n);
        else el.value = String(settings.get(key));
      } else settings.set(key, el.value);
    });
  }
}

let patchTimer = null;
let pendingPatch = {};
settings.onChange((key, value) => {
  const patch = settings.sessionPatch(key);
  if (patch) {
    Object.assign(pendingPatch, patch);
    clearTimeout(patchTimer);
    patchTimer = setTimeout(() => {
      const p = pendingPatch;
      pendingPatch = {};
      sendSessionUpdate(p);
    }, 300);
  }
  if (key in DEFAULT_KEYS) scheduleSaveDefaults();
  switch (key) {
    case 'instructionsMode':
      syncInstructionsHint();
      break;
    case 'lang':
      setLang(value || 'en');
      break;
    case 'audioOut':
      player.setEnabled(value);
      break;
    case 'cameraFps':
      camera.setFps(value);
      break;
    case 'screenFps':
      screenCap.setFps(value);
      break;
    case 'echoCancellation':
    case 'noiseSuppression':
    case 'autoGainControl':
      if (mic.active) {
        mic.stop();
        startMic();
      }
      break;
    case 'token':
      loadPersonas();
      historyPanel.load();
      break;
    case 'ptt':
      syncMicUi();
      break;
    default:
      break;
  }
});

// ---------------------------------------------------------------------------------------------
// Wiring

function wire() {
  $('btn-start').addEventListener('click', start);
  $('btn-pause').addEventListener('click', pause);
  $('btn-resume').addEventListener('click', resume);
  $('btn-end').addEventListener('click', end);
  $('btn-stop-reply').addEventListener('click', cancelReply);

  $('persona-select').addEventListener('change', () => {
    const id = $('persona-select').value;
    settings.set('persona', id);
    renderPersonaCard();
    scheduleSaveDefaults();
    if (state.connected && sendSessionUpdate({ persona: id })) personaForSession = id;
  });

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

  $('btn-camera').addEventListener('click', () => (camera.active ? stopCamera() : startCamera()));
  $('btn-screen').addEventListener('click', () => (screenCap.active ? stopScreen() : startScreen()));

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

  $('lang-toggle').addEventListener('click', () => settings.set('lang', getLang() === 'ko' ? 'en' : 'ko'));
  $('history-refresh').addEventListener('click', () => historyPanel.load());
  $('tab-studio').addEventListener('click', (e) => {
    e.preventDefault();
    history.pushState(null, '', location.pathname + location.search);
    route();
  });
  $('history-details').addEventListener('toggle', (e) => {
    if (e.target.open) historyPanel.load();
  });
  $('memories-details').addEventListener('toggle', (e) => {
    if (e.target.open) memoryPanel.load();
  });
  $('reminders-details').addEventListener('toggle', (e) => {
    if (e.target.open) remindersPanel.load();
  });

  $('settings-form').addEventListener('submit', (e) => e.preventDefault());
  bindSettingsForm();
}

onLangChange(() => {
  showConnection(connShown.kind);
  setSessionStatus(state.sessionStatus);
  syncMicUi();
  renderPersonaCard();
  renderVoices();
  perception.render();
  historyPanel.render();
  conversation.relabel();
  liveStatus.render();
  dashboard.render();
  presence.render();
  $('btn-ptt-label').textContent = t(pttHeld ? 'mic.ptt.talking' : 'mic.ptt.hold');
  $('set-lang').value = getLang();
  $('lang-toggle').lang = getLang() === 'ko' ? 'en' : 'ko';
  document.title = t('app.title');
});

// ---------------------------------------------------------------------------------------------
// Boot

function initialLang() {
  const v = settings.get('lang');
  if (v === 'ko' || v === 'en') return v;
  return (navigator.language || '').toLowerCase().startsWith('ko') ? 'ko' : 'en';
}

window.studio = {
  state,
  settings,
  start,
  pause,
  resume,
  end,
  sendText,
  cancelReply,
  startMic,
  stopMic,
  setMuted,
  pttDown,
  pttUp,
  startCamera,
  stopCamera,
  startScreen,
  stopScreen,
  setSetting: (k, v) => settings.set(k, v),
  player,
  ws,
  ready: false,
};

wire();
setLang(initialLang());
fillSettingsForm();
syncMicUi();
syncVisionUi();
setSessionStatus('idle');
showConnection('idle');
route();
Promise.allSettled([loadServerDefaults().then(loadPersonas), loadVoices(), liveStatus.start()]).then(() => {
  window.studio.ready = true;
  document.documentElement.dataset.ready = '1';
});
