// What the companion remembers about the user (REST /v1/memories): the list, forget one,
// forget everything. The agent's own memory tools show up in the conversation as tool
// results; this panel is the user's control over the same memories.

import { t, formatDate } from '../i18n.js';

export class MemoryPanel {
  constructor({ listEl, clearBtn, api, onError, confirm }) {
    this.listEl = listEl;
    this.api = api;
    this.onError = onError;
    this.confirm = confirm || ((text) => window.confirm(text));
    this.memories = [];
    clearBtn.addEventListener('click', () => this.forgetAll());
  }

  async load() {
    try {
      const d = await this.api.request('/v1/memories');
      this.memories = (d && d.memories) || [];
    } catch (err) {
      this.onError('memories', err);
      return;
    }
    this.render();
  }

  async forget(id) {
    try {
      await this.api.request(`/v1/memories/${encodeURIComponent(id)}`, { method: 'DELETE' });
    } catch (err) {
      if (err.status !== 404) this.onError('memories', err); // 404: already gone
    }
    await this.load();
  }

  async forgetAll() {
    if (!this.memories.length || !this.confirm(t('memories.clear.confirm'))) return;
    try {
      await this.api.request('/v1/memories', { method: 'DELETE' });
    } catch (err) {
      this.onError('memories', err);
    }
    await this.load();
  }

  render() {
    this.listEl.replaceChildren();
    if (this.memories.length === 0) {
      const li = document.createElement('li');
      li.className = 'muted';
      li.textContent = t('memories.empty');
      this.listEl.append(li);
      return;
    }
    for (const m of this.memories) {
      const li = document.createElement('li');
      li.className = 'memory-item';
      li.dataset.memoryId = m.id;
      const text = document.createElement('span');
      text.className = 'memory-text';
      text.textContent = m.memory;
      const meta = document.createElement('span');
      meta.className = 'memory-meta muted small';
      meta.textContent = [m.category, m.tier === 'old' ? t('memories.old') : '', formatDate(m.updated_at)]
        .filter(Boolean)
        .join(' · ');
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'btn small-btn';
      b.textContent = t('memories.forget');
      b.setAttribute('aria-label', t('memories.forget.aria', { text: m.memory }));
      b.addEventListener('click', () => this.forget(m.id));
      li.append(text, meta, b);
      this.listEl.append(li);
    }
  }
}

// A tool result in words, in the page's language. The server's own summary (English) is the
// fallback for tools without a translation.
export function toolResultText(msg) {
  const d = msg.data || {};
  if (!msg.ok) return t('tool.failed', { name: msg.name, summary: msg.summary || '' });
  switch (msg.name) {
    case 'schedule_create': {
      const at = new Date(d.due_at);
      const time = Number.isNaN(at.getTime())
        ? d.due_at
        : at.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hour12: false });
      return t('tool.reminder_set', { time, text: d.message || '' });
    }
    case 'schedule_cancel':
      return t('tool.reminder_cancelled');
    case 'add_memory':
      return t('tool.remembered', { text: d.content || '' });
    case 'update_memory':
      return t('tool.memory_updated', { text: d.content || '' });
    case 'delete_memory':
      return t('tool.forgot', { text: d.content || '' });
    case 'search_memory':
      return t('tool.searched', { n: d.count ?? 0 });
    case 'get_screen_context':
      return msg.summary === 'no screen to look at' ? t('tool.no_screen') : t('tool.looked');
    case 'stay_silent':
      return t('tool.silent');
    default:
      return msg.summary || msg.name;
  }
}
