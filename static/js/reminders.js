// The user's reminders (REST /v1/reminders): add one "in N minutes", list the pending ones,
// cancel one. Due reminders arrive as `reminder` events and are shown by the conversation.

import { t, formatDate } from '../i18n.js';

export class RemindersPanel {
  constructor({ form, textEl, minutesEl, listEl, api, onError }) {
    this.textEl = textEl;
    this.minutesEl = minutesEl;
    this.listEl = listEl;
    this.api = api;
    this.onError = onError;
    this.pending = [];
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.add();
    });
  }

  async add() {
    const text = this.textEl.value.trim();
    const minutes = Number(this.minutesEl.value);
    if (!text || !Number.isFinite(minutes) || minutes < 0) {
      (text ? this.minutesEl : this.textEl).focus();
      return;
    }
    try {
      await this.api.request('/v1/reminders', {
        method: 'POST',
        body: { text, in_seconds: minutes * 60 },
      });
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
    } catch (err) {
      this.onError('reminders', err);
      return;
    }
    this.render();
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
      due.textContent = formatDate(r.due_at);
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
