// Screen task assistant (issue 13, seed 001): start a task on the shared screen, follow its
// status and steps, see each action before it happens (with a marker where it will click),
// and answer it: Confirm, then do it and press Done (or Skip); on a failure Retry, Take over
// or Cancel; Pause / Resume / Cancel at any time. The server plans, verifies and stops at a
// payment screen; the user (or the desktop app) performs each action.
//
// Wiring: loaded by index.html on its own; it listens to server events with onServerEvent
// (js/app/events.js), answers through the page's socket and REST client, and keeps its state
// in window.studio.state.tasks (read by browser tests). Controls go over REST so a refusal
// is shown right here.

import { t, getLang, onLangChange } from './i18n.js';
import { $, state as page, api } from './js/app/context.js';
import { ws } from './js/app/socket.js';
import { onServerEvent } from './js/app/events.js';
import { KIND } from './js/ws-client.js';

const FRAME_MAX_WIDTH = 1280; // as js/vision.js sends screen frames: coordinates are in these pixels

const state = {
  consent: null, // GET /v1/users/consent
  task: null, // {task_id, app_name, task, status, step}
  preview: null, // the pending task.action_preview
  executing: false, // the user said yes: task.action_execute came for the preview
  failure: null, // task.failed
  blocked: null, // task.blocked
  done: null, // task.done
  takenOver: false,
  route: [], // actual_route of GET /v1/tasks/{id}
  planned: [], // planned_route
  results: [], // task.action_result events, oldest first
  marker: null, // {x, y} in % of the shown screen, or null when not shown
  problem: null, // the last refusal shown in the panel
  events: [], // task.* event types received, in order
};

page.tasks = state;
if (window.studio) window.studio.tasks = { start, control, state };

// ---------------------------------------------------------------------------------------------
// Consent (seed 001 section 7.2): the four items in the interface language, from the server.

async function loadConsent() {
  try {
    state.consent = await api.request('/v1/users/consent');
  } catch (err) {
    showProblem(err.message);
    return;
  }
  renderConsent();
}

function renderConsent() {
  const box = $('task-consent-items');
  const c = state.consent;
  if (!c) return;
  const lang = getLang() === 'ko' ? 'ko' : 'en';
  const checked = new Set([...box.querySelectorAll('input:checked')].map((i) => i.value));
  box.replaceChildren(
    ...Object.entries(c.items).map(([id, item]) => {
      const label = document.createElement('label');
      label.className = 'check';
      const input = document.createElement('input');
      input.type = 'checkbox';
      input.value = id;
      input.name = 'task-consent';
      input.checked = item.agreed || checked.has(id);
      const span = document.createElement('span');
      span.textContent = item.text[lang];
      label.append(input, span);
      return label;
    }),
  );
  $('task-notice').textContent = c.notice[lang];
  $('task-consent').hidden = false;
}

// ---------------------------------------------------------------------------------------------
// Start

async function start(appName, text) {
  const app = (appName ?? $('task-app').value).trim();
  const what = (text ?? $('task-text').value).trim();
  if (!app || !what) return showProblem(t('task.need.text'));
  if (!page.connected) return showProblem(t('task.need.session'));
  const boxes = [...$('task-consent-items').querySelectorAll('input')];
  if (!boxes.length || boxes.some((b) => !b.checked)) return showProblem(t('task.need.consent'));
  showProblem(null);
  try {
    if (!state.consent.complete) {
      const items = Object.fromEntries(boxes.map((b) => [b.value, true]));
      state.consent = await api.request('/v1/users/consent', { method: 'POST', body: { items } });
    }
    reset();
    state.task = { task_id: null, app_name: app, task: what, status: 'starting', step: 0 };
    render();
    const r = await api.request('/v1/tasks', {
      method: 'POST',
      body: { app_name: app, task: what, consent_confirmed: true },
    });
    state.task = { ...state.task, task_id: r.task_id, status: r.status, step: r.current_step };
    if (r.next_action_preview && !state.preview) onPreview({ ...r.next_action_preview, task_id: r.task_id });
    if (!r.next_action_preview && r.status === 'running' && !page.screen.active) {
      showProblem(t('task.need.screen'), 'hint');
    }
  } catch (err) {
    if (state.task && !state.task.task_id) state.task = null;
    showProblem(err.message);
  }
  render();
}

function reset() {
  Object.assign(state, {
    task: null, preview: null, executing: false, failure: null, blocked: null, done: null,
    takenOver: false, route: [], planned: [], results: [], marker: null, problem: null,
  });
}

// ---------------------------------------------------------------------------------------------
// Answers and controls

/** Confirm / skip / done over the socket (the frame after 'done' must follow the report);
 * retry, take over, pause, resume and cancel over REST. */
async function control(what) {
  const id = state.task && state.task.task_id;
  const p = state.preview;
  if (!id) return;
  showProblem(null);
  try {
    switch (what) {
      case 'confirm':
        if (p) ws.sendJson({ type: 'task.confirm', task_id: id, action_id: p.action_id, approve: true });
        break;
      case 'skip':
        if (p) ws.sendJson({ type: 'task.executed', task_id: id, action_id: p.action_id, executed: false });
        break;
      case 'done': {
        if (!p) break;
        const jpeg = await screenNow(); // the screen after the action: sent right after the report
        ws.sendJson({ type: 'task.executed', task_id: id, action_id: p.action_id, executed: true });
        if (jpeg && ws.sendBinary(KIND.SCREEN, jpeg)) page.sent.screenFrames += 1;
        break;
      }
      case 'retry': {
        const failed = state.failure && state.failure.action_id;
        const path = failed
          ? `/v1/tasks/${id}/actions/${failed}/retry`
          : `/v1/tasks/${id}/actions`;
        await api.request(path, { method: 'POST', body: failed ? undefined : {} });
        break;
      }
      case 'take_over':
        await api.request(`/v1/tasks/${id}/pause`, { method: 'PATCH' });
        state.takenOver = true;
        break;
      case 'pause':
      case 'resume':
      case 'cancel':
        await api.request(`/v1/tasks/${id}/${what}`, { method: 'PATCH' });
        break;
      case 'new':
        reset();
        loadConsent();
        break;
      default:
        break;
    }
  } catch (err) {
    showProblem(err.message);
  }
  render();
}

/** One JPEG of the shared screen now (even if unchanged: "nothing changed" is an answer). */
async function screenNow() {
  const v = $('screen-video');
  if (!v || !v.srcObject || v.readyState < 2 || !v.videoWidth) return null;
  const scale = Math.min(1, FRAME_MAX_WIDTH / v.videoWidth);
  const c = document.createElement('canvas');
  c.width = Math.round(v.videoWidth * scale);
  c.height = Math.round(v.videoHeight * scale);
  c.getContext('2d').drawImage(v, 0, 0, c.width, c.height);
  const blob = await new Promise((res) => c.toBlob(res, 'image/jpeg', 0.8));
  return blob ? blob.arrayBuffer() : null;
}

// ---------------------------------------------------------------------------------------------
// Server events

onServerEvent((msg) => {
  if (!msg || typeof msg.type !== 'string' || !msg.type.startsWith('task.')) return;
  state.events.push(msg.type);
  if (state.events.length > 200) state.events.splice(0, state.events.length - 200);
  if (!state.task || (msg.task_id && state.task.task_id && msg.task_id !== state.task.task_id)) {
    if (!msg.task_id || msg.type === 'task.error') return;
    // a task started elsewhere (another session, the desktop app): follow it here
    reset();
    state.task = { task_id: msg.task_id, app_name: '', task: '', status: 'running', step: 0 };
    loadTask();
  }
  if (state.task && !state.task.task_id && msg.task_id) state.task.task_id = msg.task_id;
  $('task-details').open = true;
  switch (msg.type) {
    case 'task.updated':
      state.task.status = msg.status;
      state.task.step = msg.step;
      if (msg.status === 'running') {
        state.failure = null;
        state.takenOver = false;
      }
      if (msg.failure) state.failure = msg.failure;
      break;
    case 'task.action_preview':
      onPreview(msg);
      break;
    case 'task.action_execute':
      if (state.preview && state.preview.action_id === msg.action_id) state.executing = true;
      break;
    case 'task.action_result':
      state.results.push(msg);
      if (state.preview && state.preview.action_id === msg.action_id) clearPreview();
      if (msg.status === 'success') {
        state.task.step = Math.max(state.task.step, msg.step); // steps done
        loadTask();
      }
      break;
    case 'task.failed':
      state.failure = msg;
      break;
    case 'task.blocked':
      state.blocked = msg;
      clearPreview();
      loadTask();
      break;
    case 'task.done':
      state.done = msg;
      clearPreview();
      loadTask();
      break;
    case 'task.error':
      showProblem(t('task.error', { message: msg.message }));
      break;
    default:
      break;
  }
  render();
});

function onPreview(p) {
  state.preview = p;
  state.executing = false;
  state.takenOver = false;
  drawScreen(p);
}

function clearPreview() {
  state.preview = null;
  state.executing = false;
  state.marker = null;
}

/** The route so far (and the plan), from the store. */
async function loadTask() {
  const id = state.task && state.task.task_id;
  if (!id) return;
  try {
    const r = await api.request(`/v1/tasks/${id}`);
    if (!state.task || state.task.task_id !== id) return;
    state.task.app_name = r.app_name;
    state.task.task = r.task;
    state.route = (r.route && r.route.actual_route) || [];
    state.planned = (r.route && r.route.planned_route) || [];
  } catch {
    return; // the live events still say where the task is
  }
  render();
}

/** A still of the shared screen with a marker where the action will happen. */
function drawScreen(p) {
  const v = $('screen-video');
  const shot = $('task-shot');
  if (!v || !v.srcObject || v.readyState < 2 || !v.videoWidth) {
    state.marker = null;
    return;
  }
  shot.width = 640;
  shot.height = Math.round((640 * v.videoHeight) / v.videoWidth);
  shot.getContext('2d').drawImage(v, 0, 0, shot.width, shot.height);
  const scale = Math.min(1, FRAME_MAX_WIDTH / v.videoWidth);
  const w = v.videoWidth * scale;
  const h = v.videoHeight * scale;
  const c = p.coordinates;
  const inside = c && c.x >= 0 && c.y >= 0 && c.x <= w && c.y <= h;
  state.marker = inside ? { x: (100 * c.x) / w, y: (100 * c.y) / h } : null;
}

// ---------------------------------------------------------------------------------------------
// Rendering

function actionWord(type) {
  const key = `task.action.${type}`;
  const s = t(key);
  return s === key ? type : s;
}

function showProblem(text, kind = 'error') {
  state.problem = text ? { text, kind } : null;
  render();
}

function render() {
  const s = state;
  const live = !!s.task;
  $('task-form').hidden = live;
  $('task-live').hidden = !live;
  const formProblem = $('task-form-problem');
  formProblem.hidden = live || !s.problem;
  formProblem.dataset.kind = s.problem ? s.problem.kind : '';
  formProblem.textContent = s.problem && !live ? s.problem.text : '';
  if (!live) return;
  const lines = [];
  const task = s.task;
  $('task-title').textContent = task.app_name ? t('task.title', { app: task.app_name, task: task.task }) : '';
  const status = $('task-status');
  status.dataset.status = task.status;
  status.textContent = t('task.status', { status: t(`task.status.${task.status}`), step: task.step });

  // the preview
  const p = s.preview;
  $('task-preview').hidden = !p;
  if (p) {
    $('task-preview').dataset.final = String(!!p.final);
    $('task-final').hidden = !p.final;
    const type = actionWord(p.action_type || p.type);
    $('task-action').textContent = t('task.next', { type, target: p.target || '' });
    $('task-type').textContent = type + (p.text ? ` “${p.text}”` : '');
    $('task-target').textContent = p.target || '';
    $('task-description').textContent = p.description || '';
    $('task-reasoning').textContent = p.reasoning || '';
    $('task-do-now').hidden = !s.executing;
    $('task-do-now').textContent = t('task.doNow', { type, target: p.target || '' });
  }
  $('task-screen').hidden = !p || !s.marker;
  const marker = $('task-marker');
  marker.hidden = !s.marker;
  if (s.marker) {
    marker.style.left = `${s.marker.x}%`;
    marker.style.top = `${s.marker.y}%`;
  }

  // failures, the payment stop, the end
  let kind = 'error';
  if (s.blocked) {
    kind = 'blocked';
    lines.push(t('task.blocked'));
    if (s.blocked.evidence && s.blocked.evidence.length) {
      lines.push(t('task.blocked.evidence', { evidence: s.blocked.evidence.join(', ') }));
    }
  } else if (s.done) {
    kind = 'done';
    if (s.done.status === 'completed') lines.push(t('task.done.completed'));
    else if (s.done.home && s.done.home.steps.length) {
      lines.push(
        t('task.done.cancelled', {
          screen: s.done.home.start_screen || '',
          steps: s.done.home.steps.map(() => t('task.home.step')).join(' → '),
        }),
      );
    } else lines.push(t('task.done.cancelledHome'));
  } else if (task.status === 'failed' && s.failure) {
    const key = `task.failed.${s.failure.reason}`;
    const said = t(key);
    lines.push(said === key ? t('task.failed.other') : said);
    lines.push(
      s.failure.retries_left > 0
        ? t('task.failed.retries', { n: s.failure.retries_left })
        : t('task.failed.noRetries'),
    );
  } else if (task.status === 'paused' && s.takenOver) {
    kind = 'hint';
    lines.push(t('task.takenOver'));
  }
  if (s.problem) lines.push(s.problem.text);
  const problem = $('task-problem');
  problem.hidden = lines.length === 0;
  problem.dataset.kind = s.problem && !s.blocked && !s.done ? s.problem.kind : kind;
  problem.replaceChildren(
    ...lines.map((l) => {
      const el = document.createElement('p');
      el.textContent = l;
      return el;
    }),
  );

  // the buttons this state allows
  const st = task.status;
  const options = (st === 'failed' && s.failure && s.failure.options) || [];
  const show = {
    confirm: st === 'running' && !!p && !s.executing,
    done: st === 'running' && !!p && s.executing,
    skip: st === 'running' && !!p,
    retry: options.includes('retry'),
    take_over: options.includes('take_over'),
    pause: st === 'running',
    resume: st === 'paused',
    cancel: ['running', 'paused', 'failed'].includes(st),
    new: ['completed', 'cancelled', 'blocked_payment'].includes(st),
  };
  for (const btn of document.querySelectorAll('#task-buttons [data-task]')) {
    btn.hidden = !show[btn.dataset.task];
  }
  const confirm = document.querySelector('#task-buttons [data-task="confirm"]');
  confirm.textContent = t(p && p.final ? 'task.btn.confirmFinal' : 'task.btn.confirm');

  // the route so far
  const list = $('task-route');
  list.replaceChildren(
    ...s.route.map((r) => {
      const li = document.createElement('li');
      const at = r.at ? new Date(r.at) : null;
      li.textContent = t('task.route.item', {
        screen: r.screen || '?',
        type: actionWord(r.action_type),
        action: r.action || '',
        after: r.screen_after || '?',
        time: at && !Number.isNaN(at.getTime())
          ? at.toLocaleTimeString(getLang() === 'ko' ? 'ko-KR' : 'en-US', { hour12: false })
          : '',
      });
      return li;
    }),
  );
  $('task-route-empty').hidden = s.route.length > 0;
  $('task-plan').hidden = s.planned.length === 0;
  $('task-plan').textContent = t('task.plan', { steps: s.planned.join(' → ') });
}

// ---------------------------------------------------------------------------------------------
// Boot

$('task-form').addEventListener('submit', (e) => {
  e.preventDefault();
  start();
});
$('task-buttons').addEventListener('click', (e) => {
  const btn = e.target.closest('[data-task]');
  if (btn) control(btn.dataset.task);
});
$('task-details').addEventListener('toggle', (e) => {
  if (e.target.open && !state.consent) loadConsent();
});
onLangChange(() => {
  renderConsent();
  render();
});
render();
