// Toasts for errors, warnings and notes. Errors go to a role=alert region (announced at once),
// warnings and notes to a role=status region. Nothing is shown only in the console.
// The same message repeated while its toast is on screen bumps a counter instead of stacking
// (the server answers every bad frame, so a fault can repeat 50 times a second).

import { t } from '../i18n.js';

export class Toasts {
  constructor({ politeRegion, alertRegion, statusLine }) {
    this.polite = politeRegion;
    this.alert = alertRegion;
    this.statusLine = statusLine;
    this.live = new Map(); // key -> {el, count, timer}
  }

  /**
   * @param {'error'|'warning'|'info'} kind
   * @param {string} text plain words for the user
   * @param {{sticky?: boolean, detail?: string}} [opts]
   */
  show(kind, text, opts = {}) {
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
    label.textContent = `${t(kind === 'error' ? 'toast.error' : kind === 'warning' ? 'toast.warning' : 'toast.info')}: `;
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

    const entry = { el, counter, count: 1, timer: null };
    entry.remove = () => {
      clearTimeout(entry.timer);
      el.remove();
      this.live.delete(key);
      // The status line mirrors the newest toast still on screen.
      if (this.statusLine && this.statusLine.textContent === text) {
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
}
