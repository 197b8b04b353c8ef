// The settings form: the stored choices of this browser (../settings.js), the live session
// patches they cause, and the user's defaults for new sessions kept on the server
// (GET/PUT /v1/settings).

import { $, state, settings, shared, api, restError } from './context.js';
import { t, setLang, getLang } from '../../i18n.js';
import { historyPanel } from './panels.js';
import { player } from './audio-out.js';
import { sendSessionUpdate } from './socket.js';
import { mic, startMic, syncMicUi } from './mic-ui.js';
import { camera, screenCap } from './vision-ui.js';
import { loadPersonas } from './personas.js';

const DEFAULT_KEYS = { temperature: 'temperature', maxTokens: 'max_tokens', instructions: 'instructions', instructionsMode: 'instructions_mode', voice: 'voice' };
let applyingDefaults = false;

/** Saved defaults fill the form (a ?persona= or other URL override still wins for this load). */
export async function loadServerDefaults() {
  try {
    shared.serverDefaults = await api.userSettings();
  } catch {
    shared.serverDefaults = {};
    return;
  }
  applyingDefaults = true;
  for (const [key, field] of Object.entries(DEFAULT_KEYS)) {
    const v = shared.serverDefaults[field];
    if (v !== undefined && v !== null && !(key in settings.overrides)) settings.set(key, String(v));
  }
  applyingDefaults = false;
  fillSettingsForm();
}

let saveTimer = null;
/** Every choice is saved as the default for new sessions (debounced). */
export function scheduleSaveDefaults() {
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
  const body = Object.fromEntries(Object.entries(shared.serverDefaults || {}).filter(([, x]) => x !== null && x !== undefined));
  for (const f of ['persona', 'voice', 'instructions', 'temperature', 'max_tokens']) delete body[f];
  if (persona && shared.personas.some((p) => p.id === persona)) body.persona = persona;
  if (v.voice) body.voice = v.voice;
  if (v.instructions && v.instructions.trim()) body.instructions = v.instructions.trim();
  body.instructions_mode = v.instructionsMode === 'replace' ? 'replace' : 'append';
  const temp = parseFloat(v.temperature);
  if (v.temperature !== '' && Number.isFinite(temp)) body.temperature = temp;
  const mt = parseInt(v.maxTokens, 10);
  if (v.maxTokens !== '' && Number.isFinite(mt)) body.max_tokens = mt;
  const status = $('settings-saved');
  try {
    shared.serverDefaults = await api.saveUserSettings(body);
    state.savedDefaults = shared.serverDefaults;
    status.textContent = t('settings.saved');
  } catch (err) {
    status.textContent = '';
    restError('settings', err);
  }
}

export function syncInstructionsHint() {
  const replace = settings.get('instructionsMode') === 'replace';
  $('set-instructions-hint').textContent = t(replace ? 'settings.instructions.replace.hint' : 'settings.instructions.append.hint');
  $('set-instructions-label').textContent = t(replace ? 'settings.instructions.replace' : 'settings.instructions.append');
}

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

export function fillSettingsForm() {
  for (const [id, key, kind] of FIELDS) {
    const el = $(id);
    const v = settings.get(key);
    if (kind === 'check') el.checked = !!v;
    else if (id !== 'set-voice') el.value = v === undefined || v === null ? '' : String(v);
  }
  $('set-lang').value = getLang();
  syncInstructionsHint();
}

/** Form fields write the settings; the settings' changes take effect below. */
export function wireSettingsForm() {
  $('settings-form').addEventListener('submit', (e) => e.preventDefault());
  for (const [id, key, kind] of FIELDS) {
    const el = $(id);
    el.addEventListener('change', () => {
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
