// Turn taking in the settings form (issue 19): how the user's turn ends (semantic, server
// VAD, or push to talk, which is the mic panel's toggle too), the semantic turns' eagerness,
// whether the camera's gaze joins in and whether speaking over a reply stops it (barge-in). The choices live in the settings store (this
// browser), which sends them with session.update (settings.js turnDetection); the line under
// the fields shows what the server echoed in session.created / session.updated, the truth.
//
// Wiring: loaded by index.html on its own; state.turnDetection is the server's echo (read by
// browser tests).

import { t, onLangChange } from '../../i18n.js';
import { $, state, settings } from './context.js';
import { onServerEvent } from './events.js';

state.turnDetection = null;

function kind() {
  if (settings.get('ptt')) return 'none';
  return settings.get('turnType') === 'server_vad' ? 'server_vad' : 'semantic';
}

function render() {
  const k = kind();
  $('set-turn-type').value = k;
  $('set-eagerness').value = settings.get('eagerness') || 'auto';
  $('set-gaze').checked = settings.get('gaze') !== false;
  $('set-barge-in').checked = settings.get('bargeIn') !== false;
  $('set-eagerness').disabled = k !== 'semantic';
  $('set-gaze').disabled = k !== 'semantic';
  $('set-silence').disabled = k !== 'server_vad';
  $('set-barge-in').disabled = k === 'none'; // push to talk: the user's press decides
  renderEcho();
}

function renderEcho() {
  const td = state.turnDetection;
  const line = $('turn-echo');
  if (!td) {
    line.textContent = '';
    return;
  }
  let what = t(`turns.type.${td.type}`);
  if (td.type === 'semantic') {
    const eagerness = td.eagerness ? t(`turns.eagerness.${td.eagerness}`) : t('turns.echo.default');
    const gaze = td.gaze === undefined ? t('turns.echo.default') : t(td.gaze ? 'turns.echo.on' : 'turns.echo.off');
    what = t('turns.echo.semantic', { eagerness, gaze });
  } else if (td.type === 'server_vad' && td.silence_ms) what += ` (${td.silence_ms} ms)`;
  if (td.type !== 'none') {
    const state = t(td.barge_in === false ? 'turns.echo.off' : 'turns.echo.on');
    what = t('turns.echo.bargeIn', { what, state });
  }
  line.textContent = t('turns.echo', { type: what });
  line.dataset.type = td.type;
}

$('set-turn-type').addEventListener('change', (e) => {
  const v = e.target.value;
  if (v === 'none') settings.set('ptt', true);
  else {
    settings.set('turnType', v);
    settings.set('ptt', false);
  }
});
$('set-eagerness').addEventListener('change', (e) => settings.set('eagerness', e.target.value));
$('set-gaze').addEventListener('change', (e) => settings.set('gaze', e.target.checked));
$('set-barge-in').addEventListener('change', (e) => settings.set('bargeIn', e.target.checked));

settings.onChange((key) => {
  if (['ptt', 'turnType', 'eagerness', 'gaze', 'bargeIn'].includes(key)) render();
});

onServerEvent((msg) => {
  if (msg.type !== 'session.created' && msg.type !== 'session.updated') return;
  const td = msg.session && msg.session.turn_detection;
  if (!td) return;
  state.turnDetection = td;
  renderEcho();
});

onLangChange(renderEcho);
render();
