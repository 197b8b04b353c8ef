// DesktopMate Studio: boots the page. Where things live:
//   i18n.js (strings), charts.js (canvas charts), audio-worklet.js (mic resampler);
//   js/*.js are components (socket framing, mic capture, reply playback, camera and screen,
//   perception, conversation, history, reminders, memories, settings store, REST client,
//   toasts, live status, dashboard, presence = the avatar: mouth and visemes go there);
//   js/app/*.js wire them to this page:
//     context.js   observable state, settings, REST client, toasts, problem reporting
//     socket.js    the WebSocket and the connection line; send()
//     events.js    server events -> page (onServerEvent lets other scripts listen)
//     session.js   start / pause / resume / end, typed turns, session events, server errors
//     audio-out.js reply audio and the avatar it drives
//     mic-ui.js    mic, mute, meter, push to talk
//     vision-ui.js camera and screen sharing
//     panels.js    conversation, perception, history, reminders, memories
//     personas.js  persona picker and card, voices
//     settings-panel.js  settings form, live patches, the user's saved defaults
//     health.js    live module status and the setup card
//     router.js    studio / dashboard views
// A new feature panel (e.g. tasks) is its own script: import what it needs from js/app/*.js
// (or use window.studio.{api, send, onEvent}) and add one line to wire() below.
//
// Browser tests read window.studio.state (shape in js/app/context.js, each field commented)
// and may drive the page with window.studio.{start, pause, resume, end, sendText, cancelReply,
// startMic, stopMic, setMuted, pttDown, pttUp, startCamera, stopCamera, startScreen,
// stopScreen, setSetting}. window.studio.ready turns true (and <html data-ready="1">) once
// personas, voices and health have loaded. Settings: localStorage 'dmp.settings' (JSON) and
// URL overrides, see js/settings.js (e.g. ?rawmic=1 turns echo cancellation, noise
// suppression and AGC off).

import { setLang, getLang, t, onLangChange } from './i18n.js';
import { $, state, settings, api, toasts } from './js/app/context.js';
import { ws, send, showConnection, connShown } from './js/app/socket.js';
import { onServerEvent } from './js/app/events.js';
import { start, pause, resume, end, sendText, cancelReply, setSessionStatus, wireSession } from './js/app/session.js';
import { player, presence } from './js/app/audio-out.js';
import { startMic, stopMic, setMuted, pttDown, pttUp, syncMicUi, relabelPtt, wireMic } from './js/app/mic-ui.js';
import { startCamera, stopCamera, startScreen, stopScreen, syncVisionUi, wireVision } from './js/app/vision-ui.js';
import { perception, historyPanel, conversation, remindersPanel, wirePanels } from './js/app/panels.js';
import { loadPersonas, loadVoices, renderPersonaCard, renderVoices, wirePersonas } from './js/app/personas.js';
import { loadServerDefaults, fillSettingsForm, wireSettingsForm } from './js/app/settings-panel.js';
import { liveStatus } from './js/app/health.js';
import { dashboard, route, wireRouter } from './js/app/router.js';

function wire() {
  wireSession();
  wirePersonas();
  wireMic();
  wireVision();
  wirePanels();
  wireRouter();
  wireSettingsForm();
  $('lang-toggle').addEventListener('click', () => settings.set('lang', getLang() === 'ko' ? 'en' : 'ko'));
}

onLangChange(() => {
  showConnection(connShown.kind);
  setSessionStatus(state.sessionStatus);
  syncMicUi();
  renderPersonaCard();
  renderVoices();
  perception.render();
  historyPanel.render();
  remindersPanel.relabel();
  conversation.relabel();
  liveStatus.render();
  dashboard.render();
  presence.render();
  relabelPtt();
  toasts.relabel();
  $('set-lang').value = getLang();
  $('lang-toggle').lang = getLang() === 'ko' ? 'en' : 'ko';
  document.title = t('app.title');
});

function initialLang() {
  const v = settings.get('lang');
  if (v === 'ko' || v === 'en') return v;
  return (navigator.language || '').toLowerCase().startsWith('ko') ? 'ko' : 'en';
}

window.studio = {
  state,
  settings,
  start,
  pause,
  resume,
  end,
  sendText,
  cancelReply,
  startMic,
  stopMic,
  setMuted,
  pttDown,
  pttUp,
  startCamera,
  stopCamera,
  startScreen,
  stopScreen,
  setSetting: (k, v) => settings.set(k, v),
  player,
  ws,
  // for other scripts on the page (a feature panel that is not a module of js/app/)
  api,
  send,
  onEvent: onServerEvent,
  ready: false,
};

wire();
setLang(initialLang());
fillSettingsForm();
syncMicUi();
syncVisionUi();
setSessionStatus('idle');
showConnection('idle');
route();
Promise.allSettled([loadServerDefaults().then(loadPersonas), loadVoices(), liveStatus.start()]).then(() => {
  window.studio.ready = true;
  document.documentElement.dataset.ready = '1';
});
