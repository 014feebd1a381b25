// A small line chart drawn on a <canvas>: a few series of (x, y) points,
// y from zero, gridlines with readable labels, sized to the canvas's CSS
// box and the screen's pixel ratio. Hidden canvases are skipped and drawn
// when they show again.

export const PALETTE = [
  '#2f6fed', '#e0742b', '#1b9e77', '#d62976', '#7b61ff', '#b8860b', '#00a3bf', '#8c564b',
  '#6a9a1f', '#e7298a', '#4d6b8a', '#a6761d',
];

const charts = new Set();
let resizeQueued = false;
window.addEventListener('resize', () => {
  if (resizeQueued) return;
  resizeQueued = true;
  requestAnimationFrame(() => {
    resizeQueued = false;
    for (const chart of charts) chart.draw();
  });
});

/** A round step near `raw`: 1, 2 or 5 times a power of ten (or of 1024). */
function niceStep(raw, binary) {
  if (!(raw > 0)) return 1;
  const base = binary ? 1024 ** Math.floor(Math.log(raw) / Math.log(1024)) : 10 ** Math.floor(Math.log10(raw));
  const multiples = binary ? [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 1024] : [1, 2, 5, 10];
  for (const m of multiples) if (base * m >= raw) return base * m;
  return base * multiples[multiples.length - 1];
}

export class LineChart {
  /**
   * options: `yFormat(y)`, `xFormat(x, xMin, xMax)`, `binary` (byte
   * steps on the y axis), `fill` (shade under lines), `window` (show only
   * the last `window` units of x), `emptyText`.
   */
  constructor(canvas, options = {}) {
    this.canvas = canvas;
    this.options = {
      yFormat: (y) => String(y),
      xFormat: (x) => String(Math.round(x)),
      binary: false,
      fill: false,
      window: null,
      emptyText: 'no data yet',
      ...options,
    };
    this.series = [];
    charts.add(this);
  }

  /** `series`: `[{label, color, points: [[x, y], ...]}]`. */
  setSeries(series) {
    this.series = series;
    this.draw();
  }

  color(value, style) {
    if (value && value.startsWith('var(')) {
      const name = value.slice(4, -1).trim();
      return style.getPropertyValue(name).trim() || '#888';
    }
    return value || '#888';
  }

  draw() {
    const canvas = this.canvas;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    const ratio = window.devicePixelRatio || 1;
    const pixelWidth = Math.round(width * ratio);
    const pixelHeight = Math.round(height * ratio);
    if (canvas.width !== pixelWidth || canvas.height !== pixelHeight) {
      canvas.width = pixelWidth;
      canvas.height = pixelHeight;
    }
    const ctx = canvas.getContext('2d');
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, width, height);

    const style = getComputedStyle(canvas);
    const textColor = style.getPropertyValue('--muted').trim() || '#667085';
    const gridColor = style.getPropertyValue('--grid').trim() || '#e9ecf1';
    ctx.font = '11px system-ui, sans-serif';
    ctx.textBaseline = 'middle';

    const o = this.options;
    let xMax = -Infinity;
    let xMin = Infinity;
    for (const s of this.series) {
      for (const [x] of s.points) {
        if (x > xMax) xMax = x;
        if (x < xMin) xMin = x;
      }
    }
    if (xMax === -Infinity) {
      ctx.fillStyle = textColor;
      ctx.textAlign = 'center';
      ctx.fillText(o.emptyText, width / 2, height / 2);
      return;
    }
    if (o.window) xMin = Math.max(xMin, xMax - o.window);
    if (xMax - xMin < 1e-9) xMax = xMin + 1;

    let yMax = 0;
    for (const s of this.series) {
      for (const [x, y] of s.points) if (x >= xMin && y > yMax) yMax = y;
    }
    // Byte axes step by whole bytes at least.
    const step = o.binary ? Math.max(1, niceStep((yMax || 1) / 4, true)) : niceStep((yMax || 1) / 4, false);
    const top = Math.max(step, Math.ceil((yMax || 1) / step) * step);

    const ticks = [];
    for (let v = 0; v <= top + step / 2; v += step) ticks.push(v);
    const labelWidth = Math.max(...ticks.map((v) => ctx.measureText(o.yFormat(v)).width));
    const pad = { left: Math.ceil(labelWidth) + 10, right: 10, top: 8, bottom: 20 };
    const plotW = Math.max(10, width - pad.left - pad.right);
    const plotH = Math.max(10, height - pad.top - pad.bottom);
    const px = (x) => pad.left + ((x - xMin) / (xMax - xMin)) * plotW;
    const py = (y) => pad.top + plotH - (y / top) * plotH;

    // Horizontal gridlines with y labels.
    ctx.lineWidth = 1;
    ctx.strokeStyle = gridColor;
    ctx.fillStyle = textColor;
    ctx.textAlign = 'right';
    for (const v of ticks) {
      const y = Math.round(py(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(pad.left, y);
      ctx.lineTo(pad.left + plotW, y);
      ctx.stroke();
      ctx.fillText(o.yFormat(v), pad.left - 6, y);
    }

    // x labels at the ends and in between.
    ctx.textBaseline = 'top';
    const xTicks = Math.max(2, Math.min(6, Math.floor(plotW / 90)));
    for (let i = 0; i <= xTicks; i += 1) {
      const x = xMin + ((xMax - xMin) * i) / xTicks;
      ctx.textAlign = i === 0 ? 'left' : i === xTicks ? 'right' : 'center';
      ctx.fillText(o.xFormat(x, xMin, xMax), px(x), pad.top + plotH + 5);
    }

    // The series.
    ctx.save();
    ctx.beginPath();
    ctx.rect(pad.left, pad.top - 2, plotW, plotH + 4);
    ctx.clip();
    for (const s of this.series) {
      const points = s.points.filter(([x]) => x >= xMin);
      if (!points.length) continue;
      const color = this.color(s.color, style);
      ctx.strokeStyle = color;
      ctx.lineWidth = 2;
      ctx.lineJoin = 'round';
      ctx.beginPath();
      points.forEach(([x, y], i) => (i ? ctx.lineTo(px(x), py(y)) : ctx.moveTo(px(x), py(y))));
      ctx.stroke();
      if (points.length === 1) {
        ctx.fillStyle = color;
        ctx.beginPath();
        ctx.arc(px(points[0][0]), py(points[0][1]), 3, 0, Math.PI * 2);
        ctx.fill();
      }
      if (o.fill && points.length > 1) {
        ctx.globalAlpha = 0.12;
        ctx.fillStyle = color;
        ctx.lineTo(px(points[points.length - 1][0]), py(0));
        ctx.lineTo(px(points[0][0]), py(0));
        ctx.closePath();
        ctx.fill();
        ctx.globalAlpha = 1;
      }
    }
    ctx.restore();
  }
}
