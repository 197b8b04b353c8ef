// What every part of the page shares: the observable state (read by browser tests), the stored
// settings, the REST client, the toasts and how a problem is reported. Imports no other page
// module, so any of them can import it.

import { t, has } from '../../i18n.js';
import { Settings } from '../settings.js';
import { makeApi } from '../api.js';
import { Toasts } from '../toast.js';

export const $ = (id) => document.getElementById(id);
const MAX_LIST = 500;

// Observable state (read by browser tests; the page never reads it back to decide things that
// the modules already know, except where noted).
export const state = {
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

/** Values several modules replace (an imported binding cannot be assigned, a field can). */
export const shared = {
  personas: [], // GET /v1/personas
  serverDefaults: {}, // GET /v1/settings: the user's defaults for new sessions
  personaForSession: null, // the persona the socket asks for (a reconnect keeps it)
};

export const settings = new Settings();
export const api = makeApi(() => settings.get('token'));
export const toasts = new Toasts({
  politeRegion: $('toasts-status'),
  alertRegion: $('toasts-alert'),
  statusLine: $('status-line'),
});

/** Append to a bounded list of the state. */
export function cap(list, item) {
  list.push(item);
  if (list.length > MAX_LIST) list.splice(0, list.length - MAX_LIST);
}

/** Record a problem in state.errors (a repeat of the last one only bumps its count). */
export function recordProblem(entry) {
  const last = state.errors[state.errors.length - 1];
  if (last && last.kind === entry.kind && last.code === entry.code && last.message === entry.message) {
    last.count += 1;
    return;
  }
  cap(state.errors, { ...entry, count: 1, at: Date.now() });
}

/** A problem noticed by the page itself (mic denied, server unreachable, ...). ``words`` is
 * a function giving the message in the current interface language (or a fixed string). */
export function report(kind, words, extra = {}) {
  const text = typeof words === 'function' ? words() : words;
  recordProblem({ kind: kind === 'client' ? 'client' : kind, code: extra.code || null, message: extra.message || text, fatal: !!extra.fatal, text });
  toasts.show(kind === 'client' ? 'error' : kind, words, { sticky: !!extra.fatal, detail: extra.detail });
}

/** A failed REST call in the interface language: the server's `code` when it sent one and the
 * page knows it, else what failed in plain words; the server's own message only on hover. */
export function restError(what, err) {
  const code = err && err.data && typeof err.data.code === 'string' ? err.data.code : null;
  const message = err && err.message ? err.message : String(err);
  const thing = () => t(has(`what.${what}`) ? `what.${what}` : what);
  const words = () => {
    if (err && (err.status === 401 || err.status === 403) && !(code && has(`code.${code}`))) return t('code.unauthorized');
    if (code && has(`code.${code}`)) return t(`code.${code}`);
    if (err && err.status === 0) return t('err.rest.offline', { what: thing() });
    return t('err.rest', { what: thing(), message: err && err.status ? `HTTP ${err.status}` : '' });
  };
  report('error', words, { code: code || (err && err.status ? `http_${err.status}` : 'network'), message, detail: message });
}

/** A plain link cannot send the Authorization header: the HTML report with the token in the
 * query (the server accepts either). */
export function reportHref(reportUrl) {
  const url = new URL(`${reportUrl}.html`, location.href);
  const token = settings.get('token');
  if (token) url.searchParams.set('token', token);
  return url.pathname + url.search;
}

/** A persona's display name by id (null when unknown). */
export function personaName(id) {
  const p = shared.personas.find((x) => x.id === id);
  return p ? p.name : null;
}
