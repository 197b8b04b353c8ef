// The usage dashboard (seed 004): GET /v1/usage over a date range, drawn as daily bar charts
// (charts.js, no library) and a per-persona latency table. Every number shown has its words.

import { t } from '../i18n.js';
import { drawBarChart, PALETTE } from '../charts.js';

const DAY_MS = 86_400_000;
const isoDay = (d) => new Date(d).toISOString().slice(0, 10);
/** The sum of some counters of a bucket (undefined when none was used). */
const sum = (counters, ...keys) => (keys.some((k) => k in counters) ? keys.reduce((n, k) => n + (counters[k] || 0), 0) : undefined);

/** A day's p50 and p95 of one of /v1/usage's latencies, as a chart in ms. */
function latencyChart(id, title, key) {
  const of = (d, p) => d.latency && d.latency[key] && d.latency[key][p];
  return { id, title, ms: true, series: [['dash.s.p50', (d) => of(d, 'p50')], ['dash.s.p95', (d) => of(d, 'p95')]] };
}

/** The charts: a title key and the series taken from each day's bucket. */
const CHARTS = [
  { id: 'api', title: 'dash.api', series: [['dash.s.api', (d) => d.counters.api_calls]] },
  {
    id: 'calls',
    title: 'dash.calls',
    series: [
      ['dash.s.llm', (d) => d.counters.llm_calls],
      ['dash.s.vlm', (d) => d.counters.vlm_calls],
      ['dash.s.memory', (d) => d.counters.memory_llm_calls],
    ],
  },
  {
    id: 'tokens',
    title: 'dash.tokens',
    series: [
      ['dash.s.in', (d) => d.counters.input_tokens],
      ['dash.s.out', (d) => d.counters.output_tokens],
      ['dash.s.memoryTokens', (d) => sum(d.counters, 'memory_input_tokens', 'memory_output_tokens', 'embedding_tokens')],
    ],
  },
  { id: 'tts', title: 'dash.tts', series: [['dash.s.chars', (d) => d.counters.tts_chars]] },
  {
    id: 'cache',
    title: 'dash.cache',
    percent: true,
    series: [
      ['dash.s.vlmCache', (d) => d.cache_hit_rate && d.cache_hit_rate.vlm],
      ['dash.s.ttsCache', (d) => d.cache_hit_rate && d.cache_hit_rate.tts],
    ],
  },
  latencyChart('ttft', 'dash.ttft', 'ttft_ms'),
  latencyChart('ttfa', 'dash.ttfa', 'ttfa_ms'),
  // voice turns (issue 19): from the end of the user's speech to the reply's first sound,
  // as sent and as the client reported playing it
  latencyChart('eos', 'dash.eos', 'eos_to_first_audio_ms'),
  latencyChart('played', 'dash.played', 'eos_to_played_ms'),
];

export class Dashboard {
  constructor({ root, api, onError, state, personaName }) {
    this.personaName = personaName || ((id) => id);
    this.root = root;
    this.api = api;
    this.onError = onError;
    this.state = state; // window.studio.state.dashboard
    this.data = null;
    this.fromEl = root.querySelector('#dash-from');
    this.toEl = root.querySelector('#dash-to');
    const today = Date.now();
    this.toEl.value = isoDay(today);
    this.fromEl.value = isoDay(today - 13 * DAY_MS);
    root.querySelector('#dash-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.load();
    });
    this.grid = root.querySelector('#dash-charts');
    for (const c of CHARTS) {
      const fig = document.createElement('figure');
      fig.className = 'chart dash-chart';
      fig.dataset.chart = c.id;
      const cap = document.createElement('figcaption');
      cap.className = 'small';
      const canvas = document.createElement('canvas');
      canvas.height = 140;
      canvas.setAttribute('role', 'img');
      fig.append(cap, canvas);
      this.grid.append(fig);
    }
    new ResizeObserver(() => this.draw()).observe(this.grid);
  }

  async load() {
    const from = this.fromEl.value;
    const to = this.toEl.value;
    try {
      this.data = await this.api.usage(from, to);
    } catch (err) {
      this.onError('usage', err);
      return;
    }
    const days = this.data.days || [];
    Object.assign(this.state, {
      loaded: true,
      range: this.data.range,
      days: days.length,
      totals: this.data.range_totals || {},
      personas: Object.keys(this.data.personas || {}),
    });
    this.render();
  }

  render() {
    this.draw();
    this.renderTotals();
    this.renderPersonas();
  }

  draw() {
    if (this.root.hidden) return;
    const days = (this.data && this.data.days) || [];
    const labels = days.map((d) => d.day.slice(5));
    CHARTS.forEach((c) => {
      const fig = this.grid.querySelector(`[data-chart="${c.id}"]`);
      const title = t(c.title);
      fig.querySelector('figcaption').textContent = title;
      const canvas = fig.querySelector('canvas');
      canvas.setAttribute('aria-label', title);
      const series = c.series.map(([key, get], i) => ({
        label: t(key),
        color: PALETTE[i],
        values: days.map((d) => {
          const v = get({ counters: {}, ...d });
          return typeof v === 'number' ? v : null;
        }),
      }));
      drawBarChart(canvas, {
        labels,
        series,
        yMax: c.percent ? 1 : undefined,
        formatY: c.percent ? (v) => `${Math.round(v * 100)}%` : c.ms ? (v) => `${Math.round(v)} ms` : undefined,
        emptyText: t('dash.empty'),
      });
    });
  }

  renderTotals() {
    const el = this.root.querySelector('#dash-totals');
    const tot = (this.data && this.data.range_totals) || {};
    const n = (k) => (tot[k] || 0).toLocaleString();
    el.textContent = this.data
      ? t('dash.totals', {
          api: n('api_calls'),
          llm: n('llm_calls'),
          vlm: n('vlm_calls'),
          tin: n('input_tokens'),
          tout: n('output_tokens'),
          tts: n('tts_chars'),
          mem: n('memory_llm_calls'),
          memTokens: (sum(tot, 'memory_input_tokens', 'memory_output_tokens', 'embedding_tokens') || 0).toLocaleString(),
          cut: n('interrupted_replies'),
        })
      : '';
  }

  renderPersonas() {
    const body = this.root.querySelector('#dash-personas tbody');
    body.replaceChildren();
    const f = (x) => (x && typeof x.p50 === 'number' ? `${Math.round(x.p50)} / ${Math.round(x.p95)} ms` : '—');
    for (const [name, p] of Object.entries((this.data && this.data.personas) || {})) {
      const tr = document.createElement('tr');
      for (const v of [this.personaName(name) || name, String(p.replies ?? 0), f(p.latency && p.latency.ttft_ms), f(p.latency && p.latency.ttfa_ms), f(p.latency && p.latency.eos_to_first_audio_ms)]) {
        const td = document.createElement('td');
        td.textContent = v;
        tr.append(td);
      }
      body.append(tr);
    }
    this.root.querySelector('#dash-personas').hidden = body.children.length === 0;
  }
}
