// Reply audio and the avatar it drives: the player reports what was heard to the server, and
// the presence (avatar, ../presence.js) follows listening / thinking / speaking. Avatar work
// (mouth shapes, visemes) belongs in ../presence.js; this module only feeds it.

import { $, state, settings, api, cap, report } from './context.js';
import { t } from '../../i18n.js';
import { ReplyPlayer } from '../playback.js';
import { Presence } from '../presence.js';
import { conversation } from './panels.js';
import { ws } from './socket.js';

let blockedShown = false;
export let presence = null; // the avatar (needs the player)

/** The reply entry of state.replies for a response id (created on first sight). */
export function replyEntry(responseId) {
  let r = state.replies.find((x) => x.responseId === responseId);
  if (!r) {
    r = { responseId, text: '', status: 'in_progress', timings: null, usage: null, audioChunks: 0, audioDone: false, audioDurationMs: null, playedMs: null, playReason: null };
    cap(state.replies, r);
  }
  return r;
}

/** "Stop reply" works while a reply is being generated or its audio is playing. */
export function syncStopButton() {
  const generating = state.replies.some((r) => r.status === 'in_progress');
  $('btn-stop-reply').disabled = !(player.busy || (generating && state.connected));
}

/** After a barge-in the server stores only what was heard (settled by our played report):
 * show that stored text instead of everything that was sent, as history will. */
export async function showHeard(r, tries = 3) {
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

export const player = new ReplyPlayer({
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
        report('warning', () => t('err.audio.blocked'), { code: 'autoplay_blocked' });
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
      report('warning', () => t('err.audio.decode'), { code: 'audio_decode' });
    }
  },
});
player.setEnabled(settings.get('audioOut'));
presence = new Presence({ root: $('presence'), player, state: state.presence });
