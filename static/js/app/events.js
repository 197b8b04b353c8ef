// Server events: each one updates the state and the part of the page it concerns. Other
// scripts (e.g. a task panel) subscribe with onServerEvent instead of growing this switch.

import { $, state, cap } from './context.js';
import { t } from '../../i18n.js';
import { KIND, parseAudioFrame } from '../ws-client.js';
import { responseIdOf } from '../playback.js';
import { toolResultText } from '../memories.js';
import { conversation, perception, remindersPanel, memoryPanel } from './panels.js';
import { player, presence, replyEntry, syncStopButton } from './audio-out.js';
import { onSessionCreated, onSessionUpdated, onSessionEnded, onServerProblem } from './session.js';
import { liveStatus } from './health.js';

const listeners = new Set();
// perception event -> [state.perception field, PerceptionPanel method]
const READINGS = {
  'analysis.face': ['face', 'onFace'],
  'analysis.voice': ['voice', 'onVoice'],
  'vision.description': ['vision', 'onVision'],
};

/** Call fn(msg) for every server event after the page handled it; returns an unsubscribe. */
export function onServerEvent(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function handleEvent(msg) {
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
      // which stops it here; until then it plays on quietly. With barge-in off
      // (turn_detection.barge_in false) it plays to its end, so at full volume.
      if (player.busy && !(state.turnDetection && state.turnDetection.barge_in === false)) player.duck(true);
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
      presence.markEmotion(null); // a new reply: its own marks decide
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
    case 'response.emotion':
      presence.markEmotion(msg.emotion);
      break;
    case 'response.audio.visemes':
      presence.addVisemes(msg.response_id, msg.seq, msg.keyframes, msg.emotion);
      break;
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
    case 'analysis.voice':
    case 'vision.description': {
      const [key, show] = READINGS[msg.type];
      state.perception[key] = msg;
      state.perception[`${key}Count`] += 1;
      perception[show](msg);
      break;
    }
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
  for (const fn of listeners) {
    try {
      fn(msg);
    } catch (err) {
      console.error('server event listener failed', err);
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

export function handleBinary(kind, buf) {
  if (kind !== KIND.AUDIO_OUT) return;
  const f = parseAudioFrame(buf);
  if (!f) return;
  state.audioChunksReceived += 1;
  state.audioBytesReceived += f.bytes.byteLength;
  replyEntry(responseIdOf(f.responseNum)).audioChunks += 1;
  player.push(f.responseNum, f.seq, f.bytes);
}
