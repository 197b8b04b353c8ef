// Approvals (issue 20): a consequential tool call waits for the user's word. The persona asks
// aloud; this panel shows the same question with Yes / No buttons, answers with
// approval.response over the page's socket, and hides the request once it is settled here,
// by voice ("응, 해줘" / "no, don't"), on another device, or by expiry.
//
// Wiring: loaded by index.html on its own; it listens with window.studio.onEvent and keeps its
// state in window.studio.state.approvals (read by browser tests).

import { t, onLangChange } from './i18n.js';
import { $, state as page } from './js/app/context.js';
import { send } from './js/app/socket.js';
import { onServerEvent } from './js/app/events.js';

const state = {
  pending: [], // approval.request events not settled yet, oldest first
  answered: [], // {call_id, decision} sent from this page
  problem: null, // the last refusal shown
};
page.approvals = state;
const timers = new Map(); // call_id -> expiry timer

function settle(callId) {
  state.pending = state.pending.filter((a) => a.call_id !== callId);
  clearTimeout(timers.get(callId));
  timers.delete(callId);
}

function onRequest(msg) {
  if (state.pending.some((a) => a.call_id === msg.call_id)) return;
  state.pending.push(msg);
  const left = Date.parse(msg.expires_at) - Date.now();
  if (Number.isFinite(left)) {
    timers.set(msg.call_id, setTimeout(() => { settle(msg.call_id); render(); }, Math.max(0, left)));
  }
}

function answer(decision) {
  const a = state.pending[0];
  if (!a) return;
  if (!send('approval.response', { call_id: a.call_id, decision })) return;
  state.answered.push({ call_id: a.call_id, decision });
  state.problem = null;
  settle(a.call_id);
  render();
}

function render() {
  const a = state.pending[0];
  $('approval-box').hidden = !a;
  if (a) {
    $('approval-question').textContent = a.question || a.description;
    $('approval-what').textContent = t('approval.what', { name: a.name });
  }
  const problem = $('approval-problem');
  problem.hidden = !state.problem;
  problem.textContent = state.problem || '';
}

onServerEvent((msg) => {
  switch (msg.type) {
    case 'session.created': // the server asks again what is still pending
      for (const a of state.pending) settle(a.call_id);
      break;
    case 'approval.request':
      onRequest(msg);
      break;
    case 'response.tool_result': // decided (here, by voice, elsewhere): the turn went on
      settle(msg.call_id);
      break;
    case 'error':
      if (msg.code === 'approval_not_pending') state.problem = t('approval.gone');
      break;
    default:
      return;
  }
  render();
});

$('approval-approve').addEventListener('click', () => answer('approve'));
$('approval-reject').addEventListener('click', () => answer('reject'));
onLangChange(render);
