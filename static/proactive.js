// Speaking first (issue 20): how often the companion speaks first (off | quiet | normal |
// chatty), quiet hours in this browser's time zone, and whether what the camera and screen
// show may make it speak (off unless the user turns it on). Each change is saved as the
// user's default (PUT /v1/settings, merged with what the rest of the page saved) and applied
// to the live session (session.update); new sessions start with the saved defaults.
//
// Wiring: loaded by index.html on its own; its fields sit in the settings form; its state is
// window.studio.state.proactive (read by browser tests).

import { t } from './i18n.js';
import { $, state as page, shared, api, restError } from './js/app/context.js';
import { sendSessionUpdate } from './js/app/socket.js';

const QUIET = /^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$/;
const state = { mode: 'normal', quiet: '', vision: false, saved: 0, problem: null };
page.proactive = state;

function zone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || null;
  } catch {
    return null;
  }
}

function choices() {
  const c = { proactive_mode: state.mode, proactive_quiet_hours: state.quiet, proactive_vision: state.vision };
  const tz = zone();
  if (tz) c.timezone = tz;
  return c;
}

function render() {
  $('set-proactive-mode').value = state.mode;
  $('set-proactive-quiet').value = state.quiet;
  $('set-proactive-vision').checked = state.vision;
  const problem = $('proactive-problem');
  problem.hidden = !state.problem;
  problem.textContent = state.problem || '';
}

async function load() {
  try {
    const saved = await api.userSettings();
    state.mode = saved.proactive_mode || state.mode;
    state.quiet = saved.proactive_quiet_hours || '';
    state.vision = Boolean(saved.proactive_vision);
  } catch {
    return; // no server defaults yet: the form shows the server's own defaults
  }
  render();
}

function changed() {
  const quiet = $('set-proactive-quiet').value.trim();
  if (quiet && !QUIET.test(quiet)) {
    state.problem = t('proactive.badQuiet');
    render();
    return;
  }
  state.mode = $('set-proactive-mode').value;
  state.quiet = quiet;
  state.vision = $('set-proactive-vision').checked;
  state.problem = null;
  render();
  sendSessionUpdate(choices()); // the live session follows at once (false when none is live)
  saving = saving.then(save); // one PUT at a time, each with the choices as they are then
}

let saving = Promise.resolve();

async function save() {
  // PUT replaces the whole object: start from what the page knows was saved
  const base = shared.serverDefaults || (await api.userSettings().catch(() => ({})));
  const body = Object.fromEntries(Object.entries(base).filter(([, x]) => x !== null && x !== undefined));
  try {
    shared.serverDefaults = await api.saveUserSettings({ ...body, ...choices() });
    state.saved += 1;
  } catch (err) {
    restError('settings', err);
  }
}

for (const id of ['set-proactive-mode', 'set-proactive-quiet', 'set-proactive-vision']) {
  $(id).addEventListener('change', changed);
}
load();
