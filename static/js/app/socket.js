// The WebSocket to /v1/ws (../ws-client.js does framing and reconnects): its URL, the
// connection line in the header, and send helpers. Server events go to ./events.js.

import { $, state, settings, shared, cap, report } from './context.js';
import { t } from '../../i18n.js';
import { WsClient } from '../ws-client.js';
import { handleEvent, handleBinary } from './events.js';
import { setSessionStatus, updateButtons } from './session.js';
import { liveStatus } from './health.js';

/** Set when the old session cannot be resumed: the next close starts a fresh one. */
export const restart = { fresh: false };

function wsUrl() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const q = new URLSearchParams();
  if (shared.personaForSession) q.set('persona', shared.personaForSession);
  if (state.sessionId) q.set('session_id', state.sessionId);
  const token = settings.get('token');
  if (token) q.set('token', token);
  return `${proto}//${location.host}/v1/ws?${q.toString()}`;
}

let reconnectTimer = null;
/** What the connection line shows now (kind, and the countdown while reconnecting). */
export const connShown = { kind: 'idle', until: 0, attempt: 0 };

export function showConnection(kind, info = {}) {
  clearInterval(reconnectTimer);
  const el = $('conn-text');
  $('conn-dot').dataset.state = kind;
  if (kind === 'reconnecting') {
    const until = info.delayMs ? performance.now() + info.delayMs : connShown.until;
    const attempt = info.attempt || connShown.attempt;
    Object.assign(connShown, { kind, until, attempt });
    const tick = () => {
      const s = Math.max(0, Math.ceil((until - performance.now()) / 1000));
      el.textContent = t('conn.reconnecting', { s, n: attempt });
    };
    tick();
    reconnectTimer = setInterval(tick, 1000);
    return;
  }
  Object.assign(connShown, { kind, until: 0, attempt: 0 });
  // Server gone and no socket: say "offline" rather than a stale state.
  if (kind !== 'open' && liveStatus && liveStatus.online === false) {
    $('conn-dot').dataset.state = 'offline';
    el.textContent = t('conn.offline');
    return;
  }
  el.textContent = kind === 'open' && state.sessionStatus === 'paused' ? t('conn.paused') : t(`conn.${kind}`);
}

export const ws = new WsClient({
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
      if (!info.willRetry && !restart.fresh) {
        // A normal End closes the socket on purpose: not a red "Disconnected".
        showConnection(state.sessionStatus === 'ended' ? 'ended' : 'closed');
        if (state.sessionStatus !== 'ended' && state.sessionStatus !== 'connecting') setSessionStatus('idle');
      }
    } else if (status === 'gaveup' && restart.fresh) {
      restart.fresh = false;
      ws.connect();
    } else if (status === 'gaveup') {
      state.connection = 'closed';
      showConnection(state.sessionStatus === 'ended' ? 'ended' : 'closed');
      if (state.sessionStatus !== 'ended') {
        setSessionStatus('idle');
        report('error', () => t('err.ws.gaveup'), { code: 'ws_unreachable' });
      }
    }
    updateButtons();
  },
});

/** Send one client event ({type, ...body}); false when the socket is not open. */
export function send(type, body = {}) {
  return ws.sendJson({ type, ...body });
}

export function sendSessionUpdate(session) {
  if (!state.connected || !session || Object.keys(session).length === 0) return false;
  return send('session.update', { session });
}
