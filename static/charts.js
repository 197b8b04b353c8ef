// Small canvas line charts drawn by the page (no library). Time runs left to right over a
// fixed window ending "now"; values are 0..1 unless yMin/yMax say otherwise.

export const PALETTE = [
  '#2f7ed8', '#e8743b', '#19a979', '#d64f8a', '#945ecf', '#c9a227', '#13a4b4', '#6c8893',
];

function fitCanvas(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(50, Math.round(canvas.clientWidth || canvas.width));
  const h = Math.max(40, Math.round(canvas.clientHeight || canvas.height));
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  return { g, w, h };
}

/**
 * @param {HTMLCanvasElement} canvas
 * @param {object} o
 * @param {{label: string, color?: string, points: Array<[number, number]>}[]} o.series
 *        points are [time ms, value]
 * @param {number} o.tMax end of the window (ms), usually Date.now()
 * @param {number} o.windowMs window length
 * @param {number} [o.yMin=0]
 * @param {number} [o.yMax=1]
 * @param {(v: number) => string} [o.formatY]
 * @param {string} [o.emptyText]
 * @param {string} [o.nowText] label of the right edge
 * @param {(min: number) => string} [o.agoText] label of the left edge
 */
export function drawLineChart(canvas, o) {
  const { g, w, h } = fitCanvas(canvas);
  const css = getComputedStyle(canvas);
  const text = css.getPropertyValue('--chart-text').trim() || '#555';
  const grid = css.getPropertyValue('--chart-grid').trim() || '#ddd';
  const font = '11px system-ui, sans-serif';
  const yMin = o.yMin ?? 0;
  const yMax = o.yMax ?? 1;
  const fmt = o.formatY || ((v) => `${Math.round(v * 100)}%`);
  const padL = 36;
  const padR = 8;
  const padT = 18;
  const padB = 16;
  const pw = w - padL - padR;
  const ph = h - padT - padB;
  const tMin = o.tMax - o.windowMs;
  const X = (t) => padL + ((t - tMin) / o.windowMs) * pw;
  const Y = (v) => padT + (1 - (v - yMin) / (yMax - yMin)) * ph;

  g.clearRect(0, 0, w, h);
  g.font = font;
  g.lineWidth = 1;
  g.strokeStyle = grid;
  g.fillStyle = text;
  g.textBaseline = 'middle';
  g.textAlign = 'right';
  for (const frac of [0, 0.5, 1]) {
    const v = yMin + frac * (yMax - yMin);
    const y = Math.round(Y(v)) + 0.5;
    g.beginPath();
    g.moveTo(padL, y);
    g.lineTo(w - padR, y);
    g.stroke();
    g.fillText(fmt(v), padL - 4, y);
  }
  g.textBaseline = 'alphabetic';
  g.textAlign = 'left';
  if (o.agoText) g.fillText(o.agoText(Math.round(o.windowMs / 60000)), padL, h - 3);
  g.textAlign = 'right';
  if (o.nowText) g.fillText(o.nowText, w - padR, h - 3);

  const hasData = o.series.some((s) => s.points.length > 0);
  if (!hasData) {
    g.textAlign = 'center';
    g.textBaseline = 'middle';
    g.fillText(o.emptyText || '', padL + pw / 2, padT + ph / 2);
    return;
  }

  // Lines.
  g.save();
  g.beginPath();
  g.rect(padL, padT - 1, pw, ph + 2);
  g.clip();
  o.series.forEach((s, i) => {
    const color = s.color || PALETTE[i % PALETTE.length];
    g.strokeStyle = color;
    g.lineWidth = s.width || 1.75;
    g.beginPath();
    let first = true;
    for (const [t, v] of s.points) {
      if (t < tMin - 5000) continue;
      const x = X(t);
      const y = Y(Math.max(yMin, Math.min(yMax, v)));
      if (first) {
        g.moveTo(x, y);
        first = false;
      } else g.lineTo(x, y);
    }
    g.stroke();
    if (s.points.length === 1) {
      const [t, v] = s.points[0];
      g.fillStyle = color;
      g.beginPath();
      g.arc(X(t), Y(v), 2.5, 0, Math.PI * 2);
      g.fill();
    }
  });
  g.restore();

  // Legend along the top.
  g.textAlign = 'left';
  g.textBaseline = 'middle';
  let x = padL;
  o.series.forEach((s, i) => {
    if (!s.label) return;
    const color = s.color || PALETTE[i % PALETTE.length];
    const tw = g.measureText(s.label).width;
    if (x + tw + 16 > w - padR) return;
    g.fillStyle = color;
    g.fillRect(x, 5, 10, 3);
    g.fillStyle = text;
    g.fillText(s.label, x + 13, 7);
    x += tw + 24;
  });
}

/**
 * Grouped bars, one group per category (e.g. a day), one bar per series; a missing value
 * (null) draws no bar. Used by the dashboard for daily buckets.
 * @param {HTMLCanvasElement} canvas
 * @param {object} o
 * @param {string[]} o.labels category labels, left to right
 * @param {{label: string, color?: string, values: Array<number|null>}[]} o.series
 * @param {(v: number) => string} [o.formatY]
 * @param {number} [o.yMax] fixed top (else the largest value)
 * @param {string} [o.emptyText] shown when every value is missing or zero
 */
export function drawBarChart(canvas, o) {
  const { g, w, h } = fitCanvas(canvas);
  const css = getComputedStyle(canvas);
  const text = css.getPropertyValue('--chart-text').trim() || '#555';
  const grid = css.getPropertyValue('--chart-grid').trim() || '#ddd';
  const fmt = o.formatY || ((v) => (Number.isInteger(v) ? String(v) : v.toFixed(1)));
  const all = o.series.flatMap((s) => s.values).filter((v) => typeof v === 'number');
  const top = o.yMax ?? Math.max(0, ...all);
  const padL = 44;
  const padR = 8;
  const padT = 18;
  const padB = 18;
  const pw = w - padL - padR;
  const ph = h - padT - padB;
  g.clearRect(0, 0, w, h);
  g.font = '11px system-ui, sans-serif';
  g.fillStyle = text;
  g.strokeStyle = grid;
  g.lineWidth = 1;
  if (!top) {
    g.textAlign = 'center';
    g.textBaseline = 'middle';
    g.fillText(o.emptyText || '', w / 2, h / 2);
    return;
  }
  g.textAlign = 'right';
  g.textBaseline = 'middle';
  for (const f of [0, 0.5, 1]) {
    const y = padT + (1 - f) * ph;
    g.beginPath();
    g.moveTo(padL, y + 0.5);
    g.lineTo(w - padR, y + 0.5);
    g.stroke();
    g.fillText(fmt(top * f), padL - 4, y);
  }
  const n = Math.max(1, o.labels.length);
  const groupW = pw / n;
  const barW = Math.max(1, (groupW * 0.8) / o.series.length);
  o.series.forEach((s, si) => {
    g.fillStyle = s.color || PALETTE[si % PALETTE.length];
    s.values.forEach((v, i) => {
      if (typeof v !== 'number' || v <= 0) return;
      const bh = (Math.min(v, top) / top) * ph;
      g.fillRect(padL + i * groupW + groupW * 0.1 + si * barW, padT + ph - bh, barW, bh);
    });
  });
  // First and last labels only: a month of days does not fit under the bars.
  g.fillStyle = text;
  g.textBaseline = 'top';
  g.textAlign = 'left';
  if (o.labels.length) g.fillText(o.labels[0], padL, padT + ph + 3);
  g.textAlign = 'right';
  if (o.labels.length > 1) g.fillText(o.labels[o.labels.length - 1], w - padR, padT + ph + 3);
  // Legend along the top.
  let x = padL;
  g.textAlign = 'left';
  g.textBaseline = 'middle';
  o.series.forEach((s, si) => {
    g.fillStyle = s.color || PALETTE[si % PALETTE.length];
    g.fillRect(x, 5, 10, 8);
    g.fillStyle = text;
    g.fillText(s.label, x + 14, 9);
    x += 22 + g.measureText(s.label).width;
  });
}
