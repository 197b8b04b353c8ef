// Past sessions of this user (REST) and their messages on click.

import { t, has, formatDate } from '../i18n.js';

const PAGE = 20;

export class HistoryPanel {
  constructor({ listEl, moreBtn, messagesEl, messagesHeading, searchEl, api, personaName, reportHref, onError }) {
    this.searchEl = searchEl;
    this.reportHref = reportHref;
    this.query = '';
    this.confirming = null; // id of the session whose delete awaits confirmation
    if (searchEl) {
      let timer = null;
      searchEl.addEventListener('input', () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          this.query = searchEl.value.trim().slice(0, 200);
          this.load();
        }, 250);
      });
    }
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
      page = await this.api.sessions(PAGE, this.offset, this.query);
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
      li.textContent = t(this.query ? 'history.noMatch' : 'history.empty');
      this.listEl.append(li);
      return;
    }
    for (const s of this.sessions) this.listEl.append(this.item(s));
  }

  /** One past session: "Emma Clarke · 6 Dec, 13:02", its first words, report link, delete. */
  item(s) {
    const li = document.createElement('li');
    li.className = 'history-row';
    li.dataset.sessionId = s.id;
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'history-item';
    b.dataset.sessionId = s.id;
    const persona = s.persona_name || this.personaName(s.persona_id) || s.persona_id || '';
    const date = formatDate(s.started_at);
    b.setAttribute('aria-label', t('history.open', { persona, date }));
    b.setAttribute('aria-pressed', String(this.selected === s.id));
    const a = document.createElement('span');
    a.className = 'history-persona';
    a.textContent = persona;
    const d = document.createElement('span');
    d.className = 'history-date';
    d.textContent = `${date} · ${t('history.count', { n: s.message_count ?? 0 })}`;
    const title = document.createElement('span');
    title.className = 'history-title';
    title.textContent = s.title || t('history.untitled');
    const st = document.createElement('span');
    st.className = `history-status status-${s.status}`;
    const key = `history.status.${s.status}`;
    st.textContent = has(key) ? t(key) : String(s.status || '');
    b.append(a, st, title, d);
    b.addEventListener('click', () => this.open(s));
    const actions = document.createElement('div');
    actions.className = 'history-actions';
    if (s.report_url && s.status === 'ended') {
      const rep = document.createElement('a');
      rep.className = 'history-report';
      rep.href = this.reportHref(s.report_url);
      rep.target = '_blank';
      rep.rel = 'noopener';
      rep.textContent = t('history.report');
      actions.append(rep);
    }
    if (this.confirming === s.id) {
      const q = document.createElement('span');
      q.className = 'history-confirm';
      q.textContent = t('history.delete.confirm');
      const yes = document.createElement('button');
      yes.type = 'button';
      yes.className = 'btn small-btn danger history-delete-yes';
      yes.textContent = t('history.delete.yes');
      yes.addEventListener('click', () => this.remove(s));
      const no = document.createElement('button');
      no.type = 'button';
      no.className = 'btn small-btn history-delete-no';
      no.textContent = t('history.delete.no');
      no.addEventListener('click', () => {
        this.confirming = null;
        this.render();
      });
      actions.append(q, yes, no);
    } else if (s.status !== 'active') {
      const del = document.createElement('button');
      del.type = 'button';
      del.className = 'btn small-btn history-delete';
      del.textContent = t('history.delete');
      del.setAttribute('aria-label', t('history.delete.aria', { persona, date }));
      del.addEventListener('click', () => {
        this.confirming = s.id;
        this.render();
        this.listEl.querySelector('.history-delete-no')?.focus();
      });
      actions.append(del);
    }
    li.append(b, actions);
    return li;
  }

  async remove(s) {
    this.confirming = null;
    try {
      await this.api.deleteSession(s.id);
    } catch (err) {
      this.onError('history', err);
      this.render();
      return;
    }
    this.sessions = this.sessions.filter((x) => x.id !== s.id);
    this.offset = Math.max(0, this.offset - 1);
    if (this.selected === s.id) {
      this.selected = null;
      this.messagesHeading.hidden = true;
      this.messagesEl.replaceChildren();
    }
    this.render();
  }

  async open(s) {
    this.selected = s.id;
    this.render();
    this.messagesHeading.textContent = t('history.messages', {
      persona: s.persona_name || this.personaName(s.persona_id) || s.persona_id || '',
      date: formatDate(s.started_at),
    });
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
      const persona = m.role === 'assistant' ? s.persona_name || this.personaName(s.persona_id) : null;
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
