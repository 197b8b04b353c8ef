// The conversation log: user transcripts (live partials in a dimmed bubble, replaced by the
// final text), typed turns, and persona replies streaming in by text deltas.
// Streaming bubbles carry aria-busy so screen readers announce each turn once, when complete.

import { t } from '../i18n.js';

export class Conversation {
  constructor(logEl, emptyEl) {
    this.log = logEl;
    this.emptyEl = emptyEl;
    this.userBubbles = new Map(); // item_id -> element
    this.replyBubbles = new Map(); // response_id -> element
    this.pendingTyped = []; // typed bubbles not yet matched by a transcript.done
  }

  clear() {
    this.log.replaceChildren();
    this.userBubbles.clear();
    this.replyBubbles.clear();
    this.pendingTyped = [];
    this.updateEmpty();
  }

  updateEmpty() {
    if (this.emptyEl) this.emptyEl.hidden = this.log.children.length > 0;
  }

  nearBottom() {
    const el = this.log;
    return el.scrollHeight - el.scrollTop - el.clientHeight < 80;
  }

  append(node) {
    const stick = this.nearBottom();
    this.log.append(node);
    this.updateEmpty();
    if (stick) this.log.scrollTop = this.log.scrollHeight;
  }

  scrollIfNear(stick) {
    if (stick) this.log.scrollTop = this.log.scrollHeight;
  }

  bubble(role, text, cls = '') {
    const li = document.createElement('li');
    li.className = `msg msg-${role} ${cls}`.trim();
    const who = document.createElement('span');
    who.className = 'msg-who';
    who.textContent = role === 'user' ? t('conv.you') : role === 'assistant' ? this.personaName || '' : '';
    const body = document.createElement('p');
    body.className = 'msg-text';
    body.textContent = text;
    const meta = document.createElement('span');
    meta.className = 'msg-meta';
    li.append(who, body, meta);
    return li;
  }

  setPersonaName(name) {
    this.personaName = name;
  }

  /** transcript.delta: the partial hypothesis so far for this utterance. */
  userPartial(itemId, text) {
    const stick = this.nearBottom();
    let li = this.userBubbles.get(itemId);
    if (!li) {
      li = this.bubble('user', text, 'partial');
      li.dataset.itemId = itemId;
      li.setAttribute('aria-busy', 'true');
      this.userBubbles.set(itemId, li);
      this.append(li);
    } else {
      li.querySelector('.msg-text').textContent = text;
    }
    this.scrollIfNear(stick);
  }

  /** transcript.done: the final text replaces the partial. */
  userFinal(itemId, text) {
    let li = this.userBubbles.get(itemId);
    if (!li) {
      // A typed turn echoed back by the server: reuse its bubble instead of adding a second.
      const idx = this.pendingTyped.findIndex((p) => p.text.trim() === String(text).trim());
      if (idx >= 0) {
        li = this.pendingTyped[idx].li;
        this.pendingTyped.splice(idx, 1);
        li.dataset.itemId = itemId;
        this.userBubbles.set(itemId, li);
        return;
      }
      li = this.bubble('user', text);
      li.dataset.itemId = itemId;
      this.userBubbles.set(itemId, li);
      this.append(li);
    }
    li.querySelector('.msg-text').textContent = text;
    li.classList.remove('partial');
    li.removeAttribute('aria-busy');
    if (!String(text).trim()) li.remove(); // nothing was recognised
    this.updateEmpty();
  }

  typed(text) {
    const li = this.bubble('user', text, 'typed');
    this.pendingTyped.push({ text, li });
    if (this.pendingTyped.length > 10) this.pendingTyped.shift();
    this.append(li);
  }

  replyStart(responseId) {
    if (this.replyBubbles.has(responseId)) return this.replyBubbles.get(responseId);
    const li = this.bubble('assistant', '', 'streaming');
    li.dataset.responseId = responseId;
    li.setAttribute('aria-busy', 'true');
    this.replyBubbles.set(responseId, li);
    this.append(li);
    return li;
  }

  replyDelta(responseId, delta) {
    const stick = this.nearBottom();
    const li = this.replyStart(responseId);
    li.querySelector('.msg-text').textContent += delta;
    this.scrollIfNear(stick);
  }

  replyDone(responseId, { status, text, timings }) {
    const stick = this.nearBottom();
    const li = this.replyStart(responseId);
    const body = li.querySelector('.msg-text');
    // A cancelled reply shows what was heard (the stored, truncated text), like history does.
    if (typeof text === 'string' && (status === 'completed' || (status === 'cancelled' && text))) body.textContent = text;
    li.classList.remove('streaming');
    li.removeAttribute('aria-busy');
    li.dataset.status = status;
    const meta = li.querySelector('.msg-meta');
    const parts = [];
    if (status === 'cancelled') parts.push(t('conv.interrupted'));
    if (status === 'failed') parts.push(t('conv.failed'));
    const hasTimings =
      timings && typeof timings === 'object' && ['ttft_ms', 'ttfa_ms', 'total_ms'].some((k) => typeof timings[k] === 'number');
    if (hasTimings) {
      const f = (v) => (typeof v === 'number' ? Math.round(v) : '–');
      parts.push(t('conv.timings', { ttft: f(timings.ttft_ms), ttfa: f(timings.ttfa_ms), total: f(timings.total_ms) }));
    }
    meta.textContent = parts.join(' · ');
    if (status === 'cancelled') li.classList.add('cancelled');
    if (status === 'failed') li.classList.add('failed');
    if (!body.textContent && status !== 'completed') body.textContent = '…';
    this.scrollIfNear(stick);
  }

  /** Replace a reply's text (what was heard of an interrupted one). */
  setReplyText(responseId, text) {
    const li = this.replyBubbles.get(responseId);
    if (li) li.querySelector('.msg-text').textContent = text || '…';
  }

  setPlaying(responseId) {
    for (const [id, li] of this.replyBubbles) li.classList.toggle('is-playing', id === responseId);
  }

  system(text) {
    const li = this.bubble('system', text);
    this.append(li);
  }

  relabel() {
    for (const li of this.log.querySelectorAll('.msg-user .msg-who')) li.textContent = t('conv.you');
  }
}
