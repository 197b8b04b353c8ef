// The user's reminders (REST /v1/reminders): add one "in N minutes" or every day / every week
// at a time (in this browser's time zone), list the pending ones, cancel one. Due reminders
// arrive as `reminder` events and are shown by the conversation.

import { t, getLang, formatDate } from '../i18n.js';

const WEEKDAYS = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'];

/** A weekday's name in the interface language (2024-01-01 was a Monday). */
function weekdayName(day) {
  const i = WEEKDAYS.indexOf(day);
  const date = new Date(Date.UTC(2024, 0, 1 + Math.max(0, i), 12));
  return date.toLocaleDateString(getLang() === 'ko' ? 'ko-KR' : 'en-US', { weekday: 'long', timeZone: 'UTC' });
}

/** "Every Tuesday at 19:00" for a repeat rule, in the interface language. */
export function repeatWords(rep) {
  if (rep.every === 'weekly') return t('reminders.every.weekly', { day: weekdayName(rep.weekday), at: rep.at });
  return t('reminders.every.daily', { at: rep.at });
}

export class RemindersPanel {
  constructor({ form, textEl, minutesEl, repeatEl, atEl, weekdayEl, listEl, api, onError }) {
    this.form = form;
    this.textEl = textEl;
    this.minutesEl = minutesEl;
    this.repeatEl = repeatEl;
    this.atEl = atEl;
    this.weekdayEl = weekdayEl;
    this.listEl = listEl;
    this.api = api;
    this.onError = onError;
    this.pending = [];
    this.loaded = false;
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.add();
    });
    repeatEl.addEventListener('change', () => this.syncForm());
    this.renderWeekdays();
    this.syncForm();
  }

  /** Minutes for a one-off, a time (and a weekday) for a recurring one. */
  syncForm() {
    const every = this.repeatEl.value;
    this.form.querySelector('[data-when="once"]').hidden = every !== '';
    this.form.querySelector('[data-when="repeat"]').hidden = every === '';
    this.form.querySelector('[data-when="weekly"]').hidden = every !== 'weekly';
  }

  renderWeekdays() {
    const chosen = this.weekdayEl.value || WEEKDAYS[(new Date().getDay() + 6) % 7];
    this.weekdayEl.replaceChildren(...WEEKDAYS.map((d) => new Option(weekdayName(d), d)));
    this.weekdayEl.value = chosen;
  }

  body(text) {
    const every = this.repeatEl.value;
    if (!every) {
      const minutes = Number(this.minutesEl.value);
      return Number.isFinite(minutes) && minutes >= 0 ? { text, in_seconds: minutes * 60 } : null;
    }
    const at = this.atEl.value.slice(0, 5);
    if (!/^\d\d:\d\d$/.test(at)) return null;
    const repeat = { every, at, time_zone: Intl.DateTimeFormat().resolvedOptions().timeZone };
    if (every === 'weekly') repeat.weekday = this.weekdayEl.value;
    return { text, repeat };
  }

  async add() {
    const text = this.textEl.value.trim();
    const body = text ? this.body(text) : null;
    if (!body) {
      (text ? (this.repeatEl.value ? this.atEl : this.minutesEl) : this.textEl).focus();
      return;
    }
    try {
      await this.api.request('/v1/reminders', { method: 'POST', body });
    } catch (err) {
      this.onError('reminders', err);
      return;
    }
    this.textEl.value = '';
    await this.load();
  }

  async load() {
    try {
      const d = await this.api.request('/v1/reminders?status=pending');
      this.pending = (d && d.reminders) || [];
      this.loaded = true;
    } catch (err) {
      this.onError('reminders', err);
      return;
    }
    this.render();
  }

  /** The interface language changed: weekday names and the list in the new language. */
  relabel() {
    this.renderWeekdays();
    if (this.loaded) this.render();
  }

  async cancel(id) {
    try {
      await this.api.request(`/v1/reminders/${encodeURIComponent(id)}`, { method: 'DELETE' });
    } catch (err) {
      if (err.status !== 409) this.onError('reminders', err); // 409: it was just delivered
    }
    await this.load();
  }

  render() {
    this.renderWeekdays();
    this.listEl.replaceChildren();
    if (this.pending.length === 0) {
      const li = document.createElement('li');
      li.className = 'muted';
      li.textContent = t('reminders.empty');
      this.listEl.append(li);
      return;
    }
    for (const r of this.pending) {
      const li = document.createElement('li');
      li.className = 'reminder-item';
      li.dataset.reminderId = r.id;
      const text = document.createElement('span');
      text.className = 'reminder-text';
      text.textContent = r.text;
      const due = document.createElement('span');
      due.className = 'reminder-due muted small';
      due.textContent = r.repeat
        ? `${repeatWords(r.repeat)} · ${t('reminders.next', { when: formatDate(r.due_at) })}`
        : formatDate(r.due_at);
      if (r.repeat) due.title = r.repeat.time_zone;
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'btn small-btn';
      b.textContent = t('reminders.cancel');
      b.setAttribute('aria-label', t('reminders.cancel.aria', { text: r.text }));
      b.addEventListener('click', () => this.cancel(r.id));
      li.append(text, due, b);
      this.listEl.append(li);
    }
  }
}
