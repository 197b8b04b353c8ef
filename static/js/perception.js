// Live perception panel: latest face analysis (emotion bars, blink rate, gaze, head pose,
// posture, concentration), latest voice analysis, latest screen description, and two rolling
// charts over the last few minutes: emotion scores, and attention (concentration and gaze).
//
// analysis.face may say {face: false} (nobody in view): the panel says so and the charts get
// no point for that moment. Scores 0..100 (concentration, posture_score) are shown as such;
// charts use 0..1.

import { t, has, emotionName } from '../i18n.js';
import { drawLineChart, PALETTE } from '../charts.js';

const WINDOW_MS = 3 * 60 * 1000;
const KEEP_MS = 5 * 60 * 1000;
const GAZE_SMOOTH_MS = 10000;

function num(v, digits = 0) {
  return typeof v === 'number' && Number.isFinite(v) ? v.toFixed(digits) : t('perc.none');
}

/** gaze_on_screen may be a boolean or a 0..1 fraction. */
function gazeValue(g) {
  if (typeof g === 'boolean') return g ? 1 : 0;
  if (typeof g === 'number' && Number.isFinite(g)) return Math.max(0, Math.min(1, g));
  return null;
}

/** A score that may be 0..1 or 0..100, as 0..1. */
function unit(v) {
  if (typeof v !== 'number' || !Number.isFinite(v)) return null;
  return Math.max(0, Math.min(1, v > 1 ? v / 100 : v));
}

function postureOf(face) {
  if (typeof face.posture_score === 'number') {
    const n = Math.round(face.posture_score);
    const label = n >= 75 ? 'good' : n >= 50 ? 'fair' : 'poor';
    return t('perc.posture.value', { label: t(`posture.${label}`), n });
  }
  const p = face.posture;
  if (typeof p === 'string' && p) return has(`posture.${p}`) ? t(`posture.${p}`) : p;
  if (p && typeof p === 'object' && p.label) return String(p.label);
  const hp = face.head_pose;
  if (!hp) return null;
  if (Math.abs(hp.yaw ?? 0) > 30) return t('posture.turned');
  if (Math.abs(hp.roll ?? 0) > 15) return t('posture.tilted');
  return t('posture.upright');
}

function rollingMean(points, spanMs) {
  const out = [];
  let j = 0;
  let sum = 0;
  for (let i = 0; i < points.length; i++) {
    sum += points[i][1];
    while (points[i][0] - points[j][0] > spanMs) sum -= points[j++][1];
    out.push([points[i][0], sum / (i - j + 1)]);
  }
  return out;
}

export class PerceptionPanel {
  constructor(root) {
    this.root = root;
    this.el = (name) => root.querySelector(`[data-perc="${name}"]`);
    this.face = null; // last event with a face in it
    this.noFace = false; // the latest event said nobody is in view
    this.voice = null;
    this.vision = null;
    this.emotionPts = []; // {t, scores}
    this.emotionCounts = new Map(); // dominant emotion -> face events this session (as the report counts)
    this.gazePts = []; // [t, 0..1]
    this.concPts = []; // [t, 0..1]
    this.colors = new Map(); // emotion label -> colour, stable across redraws
    this.drawTimer = null;
    this.lastDraw = 0;
    this.scroller = setInterval(() => {
      if (this.emotionPts.length || this.gazePts.length || this.concPts.length) this.scheduleDraw();
    }, 2000);
    const ro = new ResizeObserver(() => this.scheduleDraw());
    for (const c of root.querySelectorAll('canvas')) ro.observe(c);
    this.render();
  }

  reset() {
    this.face = null;
    this.noFace = false;
    this.voice = null;
    this.vision = null;
    this.emotionPts = [];
    this.emotionCounts = new Map();
    this.gazePts = [];
    this.concPts = [];
    this.render();
  }

  onFace(m) {
    if (m.face === false) {
      this.noFace = true;
      this.renderFace();
      return;
    }
    this.noFace = false;
    this.face = m;
    if (m.emotion) this.emotionCounts.set(m.emotion, (this.emotionCounts.get(m.emotion) || 0) + 1);
    const now = Date.now();
    if (m.emotion_scores && typeof m.emotion_scores === 'object') {
      this.emotionPts.push({ t: now, scores: { ...m.emotion_scores } });
    }
    const g = gazeValue(m.gaze_on_screen);
    if (g !== null) this.gazePts.push([now, g]);
    const c = unit(m.concentration ?? m.attention);
    if (c !== null) this.concPts.push([now, c]);
    this.trim(now);
    this.renderFace();
    this.scheduleDraw();
  }

  onVoice(m) {
    this.voice = m;
    this.renderVoice();
  }

  onVision(m) {
    this.vision = m;
    this.renderVision();
  }

  trim(now) {
    const cut = now - KEEP_MS;
    while (this.emotionPts.length && this.emotionPts[0].t < cut) this.emotionPts.shift();
    while (this.gazePts.length && this.gazePts[0][0] < cut) this.gazePts.shift();
    while (this.concPts.length && this.concPts[0][0] < cut) this.concPts.shift();
  }

  render() {
    this.renderFace();
    this.renderVoice();
    this.renderVision();
    this.scheduleDraw();
  }

  renderFace() {
    const f = this.noFace ? null : this.face;
    const none = t('perc.none');
    this.el('emotion').textContent = this.noFace ? t('perc.noFace') : f ? emotionName(f.emotion) : none;
    this.el('emotion').classList.toggle('muted', this.noFace);
    const list = this.el('scores');
    list.replaceChildren();
    // The same kind of number as the report's emotion chart: the share of the session's
    // readings in which each emotion was the main one (this moment's scores on hover).
    const total = [...this.emotionCounts.values()].reduce((a, b) => a + b, 0);
    list.title = f && f.emotion_scores
      ? Object.entries(f.emotion_scores).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${emotionName(k)} ${Math.round(v * 100)}%`).join(', ')
      : '';
    if (total === 0) {
      const li = document.createElement('li');
      li.className = 'muted';
      li.textContent = none;
      list.append(li);
    } else {
      const entries = [...this.emotionCounts.entries()]
        .map(([k, n]) => [k, n / total])
        .sort((a, b) => b[1] - a[1]);
      for (const [label, v] of entries) {
        const pct = Math.round(Math.max(0, Math.min(1, v)) * 100);
        const li = document.createElement('li');
        const name = document.createElement('span');
        name.className = 'score-name';
        name.textContent = emotionName(label);
        const bar = document.createElement('span');
        bar.className = 'score-bar';
        bar.setAttribute('aria-hidden', 'true');
        const fill = document.createElement('span');
        fill.style.width = `${pct}%`;
        fill.style.background = this.colorOf(label);
        bar.append(fill);
        const val = document.createElement('span');
        val.className = 'score-val';
        val.textContent = `${pct}%`;
        li.append(name, bar, val);
        list.append(li);
      }
    }
    this.el('blink').textContent =
      f && typeof f.blink_rate_per_min === 'number'
        ? t('perc.blink.value', { n: num(f.blink_rate_per_min, 1) })
        : none;
    const g = f ? gazeValue(f.gaze_on_screen) : null;
    this.el('gaze').textContent =
      g === null
        ? none
        : typeof f.gaze_on_screen === 'boolean'
          ? t(g ? 'perc.yes' : 'perc.no')
          : `${Math.round(g * 100)}%`;
    const c = f ? unit(f.concentration ?? f.attention) : null;
    this.el('concentration').textContent = c === null ? none : `${Math.round(c * 100)} / 100`;
    const hp = f && f.head_pose;
    this.el('head').textContent = hp ? headWords(hp) : none;
    this.el('head').title = hp ? t('perc.head.value', { yaw: num(hp.yaw), pitch: num(hp.pitch), roll: num(hp.roll) }) : '';
    this.el('posture').textContent = (f && postureOf(f)) || none;
  }

  renderVoice() {
    const v = this.voice;
    // In words ("steady voice, a little fast"); the measurements (Hz, dB) only on hover.
    this.el('voice').textContent = v ? voiceWords(v) : t('perc.none');
    this.el('voice').title = v
      ? t('perc.voice.value', {
          pitch: num(v.pitch_hz),
          pvar: num(v.pitch_var, 1),
          rate: num(v.rate_wps, 1),
          vol: num(v.volume_db),
          pause: typeof v.pause_ratio === 'number' ? Math.round(v.pause_ratio * 100) : '—',
        })
      : t('perc.none');
  }

  renderVision() {
    this.el('screen').textContent = this.vision && this.vision.text ? this.vision.text : t('perc.none');
  }

  colorOf(label) {
    if (!this.colors.has(label)) this.colors.set(label, PALETTE[this.colors.size % PALETTE.length]);
    return this.colors.get(label);
  }

  scheduleDraw() {
    if (this.drawTimer) return;
    const wait = Math.max(0, 400 - (performance.now() - this.lastDraw));
    this.drawTimer = setTimeout(() => {
      this.drawTimer = null;
      this.lastDraw = performance.now();
      this.draw();
    }, wait);
  }

  draw() {
    const now = Date.now();
    const common = {
      tMax: now,
      windowMs: WINDOW_MS,
      emptyText: t('perc.chart.empty'),
      nowText: t('chart.now'),
      agoText: (m) => t('chart.ago', { m }),
    };
    // Emotion: one line per label for the 4 strongest labels (mean score in the window).
    const sums = new Map();
    for (const p of this.emotionPts) {
      if (p.t < now - WINDOW_MS) continue;
      for (const [k, v] of Object.entries(p.scores)) {
        if (typeof v === 'number') sums.set(k, (sums.get(k) || 0) + v);
      }
    }
    const labels = [...sums.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 4)
      .map(([k]) => k);
    const series = labels.map((label) => ({
      label: emotionName(label),
      color: this.colorOf(label),
      points: this.emotionPts
        .filter((p) => typeof p.scores[label] === 'number')
        .map((p) => [p.t, p.scores[label]]),
    }));
    drawLineChart(this.el('chart-emotion'), { ...common, series });

    // Attention: concentration as sent, and gaze on screen as a 10 s rolling mean.
    const att = [];
    if (this.concPts.length) {
      att.push({ label: t('perc.concentration'), color: PALETTE[0], points: this.concPts, width: 2 });
    }
    if (this.gazePts.length) {
      att.push({ label: t('perc.gaze'), color: PALETTE[2], points: rollingMean(this.gazePts, GAZE_SMOOTH_MS) });
    }
    drawLineChart(this.el('chart-attention'), { ...common, series: att });

    // Text equivalents for screen readers (and anyone who prefers numbers).
    const useConc = this.concPts.length > 0;
    const recent = (useConc ? this.concPts : this.gazePts).filter(([tt]) => tt >= now - WINDOW_MS);
    this.el('summary-attention').textContent = recent.length
      ? t(useConc ? 'perc.chart.summary.conc' : 'perc.chart.summary.gaze', {
          p: Math.round((recent.reduce((a, [, v]) => a + v, 0) / recent.length) * 100),
          n: recent.length,
        })
      : t('perc.chart.empty');
    const counts = new Map();
    for (const p of this.emotionPts) {
      if (p.t < now - WINDOW_MS) continue;
      const top = Object.entries(p.scores).sort((a, b) => b[1] - a[1])[0];
      if (top) counts.set(top[0], (counts.get(top[0]) || 0) + 1);
    }
    const best = [...counts.entries()].sort((a, b) => b[1] - a[1])[0];
    this.el('summary-emotion').textContent = best
      ? t('perc.chart.summary.emotion', { e: emotionName(best[0]) })
      : t('perc.chart.empty');
    const m = Math.round(WINDOW_MS / 60000);
    this.el('chart-emotion').setAttribute('aria-label', t('perc.chart.emotion', { m }));
    this.el('chart-attention').setAttribute('aria-label', t('perc.chart.attention', { m }));
    this.el('caption-emotion').textContent = t('perc.chart.emotion', { m });
    this.el('caption-attention').textContent = t('perc.chart.attention', { m });
  }
}

/** "Steady voice, a little fast": how the voice sounds, from its pitch spread (pitch_var, in
 * semitones) and speaking rate (words per second). The report page says the same words at the
 * same thresholds (server/api/report_page.py PITCH_BANDS, RATE_BANDS). */
export function voiceWords(v) {
  const parts = [];
  if (typeof v.pitch_var === 'number') {
    parts.push(t(v.pitch_var < 2 ? 'voice.steady' : v.pitch_var < 4 ? 'voice.lively' : 'voice.animated'));
  }
  if (typeof v.rate_wps === 'number' && v.rate_wps > 0) {
    const r = v.rate_wps;
    parts.push(t(r < 1.5 ? 'voice.slow' : r < 2.8 ? 'voice.easy' : r < 3.5 ? 'voice.aLittleFast' : 'voice.fast'));
  }
  if (typeof v.pause_ratio === 'number' && v.pause_ratio > 0.5) parts.push(t('voice.manyPauses'));
  return parts.length ? parts.join(', ') : t('perc.none');
}

/** "Facing the screen" or which way the head is turned (degrees on hover). */
function headWords(hp) {
  const yaw = Number(hp.yaw) || 0;
  const pitch = Number(hp.pitch) || 0;
  if (Math.abs(yaw) < 15 && Math.abs(pitch) < 15) return t('head.facing');
  if (Math.abs(yaw) >= Math.abs(pitch)) return t(yaw > 0 ? 'head.right' : 'head.left');
  return t(pitch > 0 ? 'head.up' : 'head.down');
}
