// Past sessions of this user (REST) and their messages on click.

import { t, formatDate } from '../i18n.js';

const PAGE = 20;

export class HistoryPanel {
  constructor({ listEl, moreBtn, messagesEl, messagesHeading, api, personaName, onError }) {
    this.listEl = listEl;
    this.moreBtn = moreBtn;
    this.messagesEl = messagesEl;
    this.messagesHeading = messagesHeading;
    this.api = api;
    this.personaName = personaName;
    this.onError = onError;
    this.offset = 0;
    this.sessions = [];
    this.selected = null;
    moreBtn.addEventListener('click', () => this.load(false));
  }

  async load(reset = true) {
    if (reset) {
      this.offset = 0;
      this.sessions = [];
    }
    let page;
    try {
      page = await this.api.sessions(PAGE, this.offset);
    } catch (err) {
      this.onError('history', err);
      return;
    }
    this.sessions.push(...page);
    this.offset += page.length;
    this.moreBtn.hidden = page.length < PAGE;
    this.render();
  }

  render() {
    this.listEl.replaceChildren();
    if (this.sessions.length === 0) {
      const li = document.createElement('li');
      li.className = 'muted';
      li.textContent = t('history.empty');
      this.listEl.append(li);
      return;
    }
    for (const s of this.sessions) {
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'history-item';
      b.dataset.sessionId = s.id;
      const persona = this.personaName(s.persona_id) || s.persona_id || '';
      const date = formatDate(s.started_at);
      b.setAttribute('aria-label', t('history.open', { persona, date }));
      b.setAttribute('aria-pressed', String(this.selected === s.id));
      const a = document.createElement('span');
      a.className = 'history-persona';
      a.textContent = persona;
      const d = document.createElement('span');
      d.className = 'history-date';
      d.textContent = date;
      const st = document.createElement('span');
      st.className = `history-status status-${s.status}`;
      const key = `history.status.${s.status}`;
      st.textContent = t(key) === key ? String(s.status || '') : t(key);
      b.append(a, d, st);
      b.addEventListener('click', () => this.open(s));
      li.append(b);
      this.listEl.append(li);
    }
  }

  async open(s) {
    this.selected = s.id;
    this.render();
    this.messagesHeading.textContent = t('history.messages', { id: s.id });
    this.messagesHeading.hidden = false;
    this.messagesEl.replaceChildren();
    let msgs;
    try {
      msgs = await this.api.messages(s.id);
    } catch (err) {
      this.onError('messages', err);
      return;
    }
    if (msgs.length === 0) {
      const li = document.createElement('li');
      li.className = 'muted';
      li.textContent = t('history.noMessages');
      this.messagesEl.append(li);
      return;
    }
    for (const m of msgs) {
      const li = document.createElement('li');
      li.className = `hmsg hmsg-${m.role}`;
      const who = document.createElement('span');
      who.className = 'hmsg-who';
      const key = `history.role.${m.role}`;
      const persona = m.role === 'assistant' ? this.personaName(s.persona_id) : null;
      who.textContent = persona || (t(key) === key ? m.role : t(key));
      const time = document.createElement('time');
      time.dateTime = m.created_at || '';
      time.textContent = formatDate(m.created_at);
      const p = document.createElement('p');
      p.textContent = m.content;
      li.append(who, time, p);
      if (m.interrupted) {
        const tag = document.createElement('span');
        tag.className = 'tag';
        tag.textContent = t('conv.interrupted');
        li.append(tag);
      }
      this.messagesEl.append(li);
    }
  }
}
