// Toasts for errors, warnings and notes. Errors go to a role=alert region (announced at once),
// warnings and notes to a role=status region. Nothing is shown only in the console.
// The same message repeated while its toast is on screen bumps a counter instead of stacking
// (the server answers every bad frame, so a fault can repeat 50 times a second).
// A toast's text may be a function of the interface language: relabel() redraws the toasts
// on screen in the new language when it changes.

import { t } from '../i18n.js';

export class Toasts {
  constructor({ politeRegion, alertRegion, statusLine }) {
    this.polite = politeRegion;
    this.alert = alertRegion;
    this.statusLine = statusLine;
    this.live = new Map(); // key -> {el, count, timer, kind, words, text}
  }

  static labelOf(kind) {
    return `${t(kind === 'error' ? 'toast.error' : kind === 'warning' ? 'toast.warning' : 'toast.info')}: `;
  }

  /**
   * @param {'error'|'warning'|'info'} kind
   * @param {string | (() => string)} message plain words for the user, or a function giving
   *   them in the current interface language (redrawn by relabel())
   * @param {{sticky?: boolean, detail?: string}} [opts]
   */
  show(kind, message, opts = {}) {
    const words = typeof message === 'function' ? message : () => message;
    const text = words();
    const key = `${kind}|${text}|${opts.detail || ''}`;
    const ttl = kind === 'error' ? 12000 : 8000;
    const existing = this.live.get(key);
    if (existing) {
      existing.count += 1;
      existing.counter.textContent = ` ${t('toast.repeat', { n: existing.count })}`;
      if (existing.timer) {
        clearTimeout(existing.timer);
        existing.timer = setTimeout(existing.remove, ttl);
      }
      return existing.el;
    }
    const region = kind === 'error' ? this.alert : this.polite;
    const el = document.createElement('div');
    el.className = `toast toast-${kind}`;
    const label = document.createElement('strong');
    label.textContent = Toasts.labelOf(kind);
    const msg = document.createElement('span');
    msg.className = 'toast-text';
    msg.textContent = text;
    const counter = document.createElement('span');
    counter.className = 'toast-count';
    el.append(label, msg, counter);
    // The server's own wording (English, for whoever runs it) only on hover: the toast
    // itself speaks the interface language.
    if (opts.detail) el.title = opts.detail;
    const close = document.createElement('button');
    close.type = 'button';
    close.className = 'toast-close';
    close.setAttribute('aria-label', t('toast.close'));
    close.textContent = '×';
    el.append(close);

    const entry = { el, label, msg, counter, close, count: 1, timer: null, kind, words, text, key };
    entry.remove = () => {
      clearTimeout(entry.timer);
      el.remove();
      this.live.delete(entry.key);
      // The status line mirrors the newest toast still on screen.
      if (this.statusLine && this.statusLine.textContent === entry.text) {
        const last = [...document.querySelectorAll('.toast .toast-text')].pop();
        this.statusLine.textContent = last ? last.textContent : '';
      }
    };
    close.addEventListener('click', entry.remove);
    if (!opts.sticky) entry.timer = setTimeout(entry.remove, ttl);
    this.live.set(key, entry);

    region.append(el);
    while (region.children.length > 4) {
      const first = region.firstElementChild;
      const k = [...this.live.entries()].find(([, v]) => v.el === first);
      if (k) k[1].remove();
      else first.remove();
    }
    if (this.statusLine) {
      this.statusLine.textContent = text;
      this.statusLine.dataset.kind = kind;
    }
    return el;
  }

  /** The interface language changed: the toasts on screen (and the status line) say the same
   * things in the new language. */
  relabel() {
    const entries = [...this.live.values()];
    this.live.clear();
    for (const e of entries) {
      const before = e.text;
      e.text = e.words();
      e.key = `${e.kind}|${e.text}|${e.el.title || ''}`;
      e.label.textContent = Toasts.labelOf(e.kind);
      e.msg.textContent = e.text;
      if (e.count > 1) e.counter.textContent = ` ${t('toast.repeat', { n: e.count })}`;
      e.close.setAttribute('aria-label', t('toast.close'));
      if (this.statusLine && this.statusLine.textContent === before) this.statusLine.textContent = e.text;
      this.live.set(e.key, e);
    }
  }
}
