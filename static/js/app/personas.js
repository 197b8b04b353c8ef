// The persona picker and its card, and the voice list of the settings.

import { $, state, settings, shared, api, report, restError } from './context.js';
import { t } from '../../i18n.js';
import { historyPanel } from './panels.js';
import { presence } from './audio-out.js';
import { sendSessionUpdate } from './socket.js';
import { scheduleSaveDefaults } from './settings-panel.js';

let voices = [];

export function renderPersonaCard() {
  const id = $('persona-select').value;
  const p = shared.personas.find((x) => x.id === id);
  const card = $('persona-card');
  card.hidden = !p;
  presence.setPersona(p || { name: id });
  if (!p) return;
  card.querySelector('[data-p="name"]').textContent = p.name || p.id;
  card.querySelector('[data-p="description"]').textContent = p.description || '';
  const set = (k, v) => {
    const dd = card.querySelector(`[data-p="${k}"]`);
    dd.textContent = v === undefined || v === null || v === '' ? t('perc.none') : String(v);
  };
  set('language', p.language);
  set('age', p.age);
  set('mbti', p.mbti);
  set('occupation', p.occupation);
}

export async function loadPersonas() {
  const sel = $('persona-select');
  sel.replaceChildren(new Option(t('persona.loading'), ''));
  sel.disabled = true;
  let serverDefault = null;
  try {
    ({ personas: shared.personas, default: serverDefault } = await api.personaList());
  } catch (err) {
    shared.personas = [];
    restError('personas', err);
  }
  const personas = shared.personas;
  sel.replaceChildren();
  if (personas.length === 0) {
    sel.append(new Option(t('persona.none'), ''));
    const wanted = settings.get('persona');
    if (wanted) sel.append(new Option(wanted, wanted, true, true));
  }
  for (const p of personas) {
    const lang = p.language ? ` (${p.language})` : '';
    sel.append(new Option(`${p.name || p.id}${lang}`, p.id));
  }
  // A ?persona= link, else the user's saved default (GET /v1/settings), else this browser's
  // last choice, else the server's DEFAULT_PERSONA; the first one only if none of those exist.
  const has_ = (id) => id && [...sel.options].some((o) => o.value === id);
  const order = [settings.overrides.persona, shared.serverDefaults.persona, settings.stored.persona, serverDefault];
  const pick = order.find(has_);
  if (pick) sel.value = pick;
  else if (personas.length) sel.value = personas[0].id;
  sel.disabled = false;
  renderPersonaCard();
  historyPanel.render();
}

export async function loadVoices() {
  try {
    voices = await api.voices();
  } catch (err) {
    voices = [];
    // Not fatal: the persona default voice still works. Say so once, quietly.
    report('warning', () => t('err.rest', { what: t('what.voices'), message: err.status ? `HTTP ${err.status}` : '—' }), { code: 'voices_unavailable', detail: err.message });
  }
  renderVoices();
}

export function renderVoices() {
  const sel = $('set-voice');
  const current = settings.get('voice');
  sel.replaceChildren(new Option(t('settings.voice.default'), ''));
  const byLang = new Map();
  for (const v of voices) {
    const k = v.language || '?';
    if (!byLang.has(k)) byLang.set(k, []);
    byLang.get(k).push(v);
  }
  for (const [lang, list] of [...byLang.entries()].sort()) {
    const g = document.createElement('optgroup');
    g.label = lang;
    for (const v of list) g.append(new Option(`${v.name || v.id} · ${v.provider || ''}`.replace(/ · $/, ''), v.id));
    sel.append(g);
  }
  if (current && ![...sel.options].some((o) => o.value === current)) sel.append(new Option(current, current));
  sel.value = current || '';
}

/** Choosing a persona: remembered, saved as the default, and switched live in a session. */
export function wirePersonas() {
  $('persona-select').addEventListener('change', () => {
    const id = $('persona-select').value;
    settings.set('persona', id);
    renderPersonaCard();
    scheduleSaveDefaults();
    if (state.connected && sendSessionUpdate({ persona: id })) shared.personaForSession = id;
  });
}
