// The panels around the conversation: the conversation itself, perception readings, history,
// reminders and memories (each a component in ../; this module only builds them).

import { $, api, restError, reportHref, personaName } from './context.js';
import { PerceptionPanel } from '../perception.js';
import { Conversation } from '../conversation.js';
import { HistoryPanel } from '../history.js';
import { RemindersPanel } from '../reminders.js';
import { MemoryPanel } from '../memories.js';

export const conversation = new Conversation($('conv-log'), $('conv-empty'));
export const perception = new PerceptionPanel($('perception-panel'));

export const historyPanel = new HistoryPanel({
  listEl: $('history-list'),
  moreBtn: $('history-more'),
  messagesEl: $('history-messages'),
  messagesHeading: $('history-messages-heading'),
  searchEl: $('history-search'),
  api,
  reportHref: (url) => reportHref(url),
  personaName,
  onError: (what, err) => restError(what, err),
});

export const remindersPanel = new RemindersPanel({
  form: $('reminder-form'),
  textEl: $('reminder-text'),
  minutesEl: $('reminder-minutes'),
  repeatEl: $('reminder-repeat'),
  atEl: $('reminder-at'),
  weekdayEl: $('reminder-weekday'),
  listEl: $('reminder-list'),
  api,
  onError: (what, err) => restError(what, err),
});

export const memoryPanel = new MemoryPanel({
  listEl: $('memory-list'),
  clearBtn: $('memory-clear'),
  api,
  onError: (what, err) => restError(what, err),
});

/** The panels that load on opening their disclosure. */
export function wirePanels() {
  $('history-refresh').addEventListener('click', () => historyPanel.load());
  $('history-details').addEventListener('toggle', (e) => {
    if (e.target.open) historyPanel.load();
  });
  $('memories-details').addEventListener('toggle', (e) => {
    if (e.target.open) memoryPanel.load();
  });
  $('reminders-details').addEventListener('toggle', (e) => {
    if (e.target.open) remindersPanel.load();
  });
}
