// Live server status: module states polled from /health/details (and taken from pushed
// `server.status` events when the server sends them), shown as they change in words of the
// interface language; an honest "offline" when the server stops answering; and the first-run
// setup card when no language model is configured, with its "test connection" button.

import { t, has } from '../i18n.js';

const POLL_MS = 4000;
const FINE = new Set(['ready', 'ok', 'disabled']);

/** "Voice" for tts, "Speech recognition" for stt...; unknown modules by their own name. */
export function moduleName(m) {
  return has(`module.${m}`) ? t(`module.${m}`) : m;
}

function stateName(s) {
  return has(`modstate.${s}`) ? t(`modstate.${s}`) : s;
}

export class LiveStatus {
  constructor({ api, pillEl, setupEl, onChange }) {
    this.api = api;
    this.pill = pillEl;
    this.setup = setupEl;
    this.onChange = onChange;
    this.modules = null; // module -> state, null before the first answer
    this.details = {};
    this.progress = {};
    this.online = null; // null unknown, true answering, false unreachable
    this.timer = null;
    this.lastTest = null;
    setupEl.querySelector('[data-setup="test"]').addEventListener('click', () => this.testConnection());
  }

  start() {
    clearInterval(this.timer);
    this.timer = setInterval(() => this.poll(), POLL_MS);
    return this.poll();
  }

  async poll() {
    try {
      this.apply(await this.api.healthDetails());
    } catch {
      this.online = false;
      this.render();
    }
  }

  /** A pushed `server.status` event, or a poll's answer: {modules, details, progress}. */
  apply(h) {
    this.online = true;
    this.modules = { ...((h && h.modules) || {}) };
    this.details = { ...((h && h.details) || {}) };
    this.progress = { ...((h && h.progress) || {}) };
    this.render();
  }

  /** The server's reasons for the modules not ready (which model, why, the fix). */
  get problemDetails() {
    return this.problems.map(([k]) => this.details[k]).filter(Boolean);
  }

  get problems() {
    return Object.entries(this.modules || {}).filter(([, v]) => !FINE.has(v));
  }

  get needsSetup() {
    return this.online === true && !!this.modules && this.modules.llm === 'disabled';
  }

  render() {
    const el = this.pill;
    if (this.online === false) {
      el.dataset.state = 'down';
      el.textContent = t('health.down');
      el.title = '';
    } else if (this.modules) {
      const bad = this.problems;
      el.dataset.state = bad.length ? 'degraded' : 'ok';
      el.textContent = bad.length
        ? t('health.degraded', { modules: bad.map(([k, v]) => this.label(k, v)).join(', ') })
        : t('health.ok');
      // The server's own reasons (English, for whoever runs it: which model, why, the fix)
      // only on hover.
      el.title = this.problemDetails.join('\n');
    }
    this.setup.hidden = !this.needsSetup;
    this.renderTest();
    if (this.onChange) this.onChange(this);
  }

  /** "Speech recognition (downloading 40%)". */
  label(k, v) {
    const p = this.progress[k];
    const pct = p && p.total ? ` ${Math.floor((100 * p.done) / p.total)}%` : '';
    return `${moduleName(k)} (${stateName(v)}${pct})`;
  }

  async testConnection() {
    const out = this.setup.querySelector('[data-setup="result"]');
    const btn = this.setup.querySelector('[data-setup="test"]');
    btn.disabled = true;
    out.textContent = t('setup.testing');
    try {
      this.lastTest = await this.api.setupTest(['llm']);
    } catch (err) {
      this.lastTest = { ok: false, results: [{ target: 'llm', ok: false, code: err.status === 0 ? 'offline' : 'http_error', message: err.message }] };
    }
    btn.disabled = false;
    this.renderTest();
    if (this.lastTest.ok) this.poll();
    return this.lastTest;
  }

  renderTest() {
    const out = this.setup.querySelector('[data-setup="result"]');
    if (!this.lastTest) return;
    const r = (this.lastTest.results || [])[0] || {};
    const code = r.code || (r.ok ? 'ok' : 'http_error');
    out.dataset.ok = String(!!r.ok);
    out.textContent = has(`setup.code.${code}`) ? t(`setup.code.${code}`, { ms: Math.round(r.latency_ms || 0) }) : code;
    // The server's sentence (which URL, which model) stays available on hover.
    out.title = r.message || '';
  }
}
