// Approvals (issue 20): a consequential tool call waits for the user's word. The persona asks
// aloud; this panel shows the same question with Yes / Change / No, answers with
// approval.response over the page's socket, and hides the request once it is settled here,
// by voice ("응, 해줘" / "no, don't"), on another device, or by expiry. Change shows the call's
// arguments as fields (one per top-level argument, typed like the original value; nested
// values as JSON) and sends decision "edit" with the new arguments; No sends the optional
// "why not" as the reject message, which the model reads.
// A screen task's previewed action is asked here too (the same gate; no Change); the task
// panel's answer settles it.
//
// Wiring: loaded by index.html on its own; it listens with window.studio.onEvent and keeps its
// state in window.studio.state.approvals (read by browser tests). Everything it writes in words
// is kept as a key (or a function of the language, like the toasts) and redrawn when the
// interface language changes: the argument labels, a refused edit, the "already answered" note.

import { t, onLangChange } from './i18n.js';
import { $, state as page } from './js/app/context.js';
import { send } from './js/app/socket.js';
import { onServerEvent } from './js/app/events.js';

const state = {
  pending: [], // approval.request events not settled yet, oldest first
  answered: [], // {call_id, decision} sent from this page
  problem: null, // the last refusal shown (an i18n key)
  editing: null, // call_id whose arguments are open for editing
};
page.approvals = state;
const timers = new Map(); // call_id -> expiry timer
let editProblem = null; // () => the refused edit's words in the current language

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

function answer(decision, extra = {}) {
  const a = state.pending[0];
  if (!a) return;
  if (!send('approval.response', { call_id: a.call_id, decision, ...extra })) return;
  state.answered.push({ call_id: a.call_id, decision, ...extra });
  state.problem = null;
  $('approval-why').value = '';
  settle(a.call_id);
  render();
}

function reject() {
  const why = $('approval-why').value.trim();
  answer('reject', why ? { message: why } : {});
}

// ---- editing the arguments -------------------------------------------------------------------

/** How a value is edited: scalars keep their type, anything else is JSON text. */
function kindOf(value) {
  if (typeof value === 'string') return 'string';
  if (typeof value === 'number') return 'number';
  if (typeof value === 'boolean') return 'boolean';
  return 'json';
}

function labelText(kind, key) {
  return kind === 'json' ? t('approval.json_hint', { name: key }) : key;
}

function fieldFor(key, value, i) {
  const kind = kindOf(value);
  const id = `approval-arg-${i}`;
  const label = document.createElement('label');
  label.htmlFor = id;
  label.dataset.name = key;
  label.dataset.kind = kind;
  label.textContent = labelText(kind, key);
  let input;
  if (kind === 'json') {
    input = document.createElement('textarea');
    input.rows = 3;
    input.value = JSON.stringify(value, null, 2);
  } else {
    input = document.createElement('input');
    input.type = { string: 'text', number: 'number', boolean: 'checkbox' }[kind];
    if (kind === 'number') input.step = 'any';
    if (kind === 'boolean') input.checked = value;
    else input.value = String(value);
  }
  input.id = id;
  input.dataset.key = key;
  input.dataset.kind = kind;
  return [label, input];
}

function openEdit() {
  const a = state.pending[0];
  if (!a) return;
  state.editing = a.call_id;
  const entries = Object.entries(a.arguments || {});
  $('approval-fields').replaceChildren(...entries.flatMap(([k, v], i) => fieldFor(k, v, i)));
  showEditProblem(null);
  render();
  $('approval-fields').querySelector('input, textarea')?.focus();
}

function closeEdit() {
  state.editing = null;
  $('approval-fields').replaceChildren();
  showEditProblem(null);
}

/** words: null, or () => the problem in the current language. */
function showEditProblem(words) {
  editProblem = words;
  const p = $('approval-edit-problem');
  p.hidden = !words;
  p.textContent = words ? words() : '';
}

/** A field the user filled in wrong: its message, in whichever language is shown. */
class FieldProblem extends Error {
  constructor(key, vars) {
    super(t(key, vars));
    this.words = () => t(key, vars);
  }
}

/** The labels and the refusal of an open edit form, in the current language. */
function relabelEdit() {
  for (const label of $('approval-fields').querySelectorAll('label[data-name]')) {
    label.textContent = labelText(label.dataset.kind, label.dataset.name);
  }
  if (editProblem) showEditProblem(editProblem);
}

/** The edited arguments, or throws FieldProblem. */
function readFields() {
  const args = {};
  for (const el of $('approval-fields').querySelectorAll('[data-key]')) {
    const name = el.dataset.key;
    if (el.dataset.kind === 'boolean') args[name] = el.checked;
    else if (el.dataset.kind === 'number') {
      const n = Number(el.value);
      if (el.value.trim() === '' || !Number.isFinite(n)) throw new FieldProblem('approval.bad_number', { name });
      args[name] = n;
    } else if (el.dataset.kind === 'json') {
      try {
        args[name] = JSON.parse(el.value);
      } catch (e) {
        throw new FieldProblem('approval.bad_json', { name, error: e.message });
      }
    } else args[name] = el.value;
  }
  return args;
}

function sendEdit(ev) {
  ev.preventDefault();
  let args;
  try {
    args = readFields();
  } catch (e) {
    showEditProblem(e.words);
    return;
  }
  answer('edit', { arguments: args });
}

function render() {
  const a = state.pending[0];
  if (state.editing && state.editing !== a?.call_id) closeEdit();
  $('approval-box').hidden = !a;
  $('approval-edit-form').hidden = !state.editing;
  // a screen task action is approved or rejected, never edited (the server refuses it)
  $('approval-edit').hidden = Boolean(state.editing) || Boolean(a?.name.startsWith('screen_task.'));
  if (a) {
    $('approval-question').textContent = a.question || a.description;
    $('approval-what').textContent = t('approval.what', { name: a.name });
  }
  const problem = $('approval-problem');
  problem.hidden = !state.problem;
  problem.textContent = state.problem ? t(state.problem) : '';
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
    case 'task.action_execute': // a screen task action's approval (its call_id is the
    case 'task.action_result': //   action's id), answered in the task panel, by voice or here
      settle(msg.action_id);
      break;
    case 'error':
      if (msg.code === 'approval_not_pending') state.problem = 'approval.gone';
      break;
    default:
      return;
  }
  render();
});

$('approval-approve').addEventListener('click', () => answer('approve'));
$('approval-reject').addEventListener('click', reject);
$('approval-edit').addEventListener('click', openEdit);
$('approval-edit-cancel').addEventListener('click', () => { closeEdit(); render(); });
$('approval-edit-form').addEventListener('submit', sendEdit);
onLangChange(() => {
  relabelEdit();
  render();
});
