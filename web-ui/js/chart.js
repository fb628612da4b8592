// Line charts as inline SVG, drawn from numbers with createElementNS (no library, no markup
// strings). Colours come from CSS classes (series-0 … series-3), so the CSP needs no inline style.
import { h, s } from './dom.js';
import { timestamp } from './ui.js';

const W = 640;
const H = 220;
const PAD = { l: 48, r: 12, t: 12, b: 28 };

function niceRange(min, max) {
  if (!Number.isFinite(min) || !Number.isFinite(max)) return [0, 1];
  if (min === max) {
    const d = Math.abs(min) * 0.1 || 1;
    return [min - d, max + d];
  }
  const span = max - min;
  const step = 10 ** Math.floor(Math.log10(span / 4));
  const nice = [1, 2, 5, 10].map((m) => m * step).find((st) => span / st <= 5) || step * 10;
  return [Math.floor(min / nice) * nice, Math.ceil(max / nice) * nice];
}

// Axis labels in the browser's time zone and the UI's locale (ui.timestamp → Intl).
function fmtTime(d, spanMs) {
  return timestamp(d, spanMs > 2 * 86400e3 ? 'daymonth' : 'time');
}

/**
 * @param {object} o
 * @param {string} o.title   heading and accessible name
 * @param {Date[]} o.times   x values
 * @param {{name: string, values: (number|null)[]}[]} o.series
 * @param {string} o.unit
 * @param {number} [o.min]   fixed y range
 * @param {number} [o.max]
 * @param {string} o.empty   text when there is nothing to draw
 */
export function lineChart(o) {
  const fig = h('figure', { class: 'chart' });
  const id = `chart-${o.title.replace(/[^a-z0-9]+/gi, '-').toLowerCase()}`;
  fig.append(h('figcaption', { id: `${id}-cap`, text: `${o.title} (${o.unit})` }));
  const pts = o.times.map((tm, i) => [tm, i]).filter(([tm]) => tm instanceof Date);
  const all = o.series.flatMap((se) => se.values.filter((v) => v !== null && v !== undefined && Number.isFinite(Number(v))).map(Number));
  if (pts.length < 1 || all.length === 0) {
    fig.append(h('p', { class: 'chart-empty', text: o.empty }));
    return fig;
  }
  const t0 = pts[0][0].getTime();
  const t1 = pts[pts.length - 1][0].getTime();
  const span = Math.max(t1 - t0, 1);
  let [y0, y1] = niceRange(Math.min(...all), Math.max(...all));
  if (o.min !== undefined) y0 = o.min;
  if (o.max !== undefined) y1 = Math.max(o.max, y1);
  const x = (tm) => PAD.l + ((tm - t0) / span) * (W - PAD.l - PAD.r);
  const y = (v) => H - PAD.b - ((v - y0) / (y1 - y0 || 1)) * (H - PAD.t - PAD.b);

  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-labelledby': `${id}-cap ${id}-desc`, class: 'chart-svg', preserveAspectRatio: 'none' });
  const last = o.series.map((se) => {
    const vals = se.values.filter((v) => v !== null && v !== undefined);
    return `${se.name}: ${vals.length ? Number(vals[vals.length - 1]).toFixed(1) : '—'} ${o.unit}`;
  });
  svg.append(s('desc', { id: `${id}-desc`, text: last.join('; ') }));

  // grid + y labels
  const ticks = 4;
  for (let i = 0; i <= ticks; i++) {
    const v = y0 + ((y1 - y0) * i) / ticks;
    const yy = y(v);
    svg.append(s('line', { x1: PAD.l, x2: W - PAD.r, y1: yy, y2: yy, class: 'grid' }));
    svg.append(s('text', { x: PAD.l - 6, y: yy + 4, class: 'axis-label', 'text-anchor': 'end', text: Number(v.toFixed(2)).toString() }));
  }
  // x labels
  const xt = Math.min(5, pts.length);
  for (let i = 0; i < xt; i++) {
    const tm = t0 + (span * i) / Math.max(xt - 1, 1);
    svg.append(s('text', { x: x(tm), y: H - 8, class: 'axis-label', 'text-anchor': i === 0 ? 'start' : i === xt - 1 ? 'end' : 'middle', text: fmtTime(new Date(tm), span) }));
  }
  svg.append(s('line', { x1: PAD.l, x2: PAD.l, y1: PAD.t, y2: H - PAD.b, class: 'axis' }));
  svg.append(s('line', { x1: PAD.l, x2: W - PAD.r, y1: H - PAD.b, y2: H - PAD.b, class: 'axis' }));

  o.series.forEach((se, si) => {
    let d = '';
    let pen = false;
    for (const [tm, i] of pts) {
      const v = se.values[i];
      if (v === null || v === undefined || !Number.isFinite(Number(v))) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${x(tm.getTime()).toFixed(1)},${y(Number(v)).toFixed(1)}`;
      pen = true;
    }
    if (pts.length === 1) {
      const v = se.values[pts[0][1]];
      if (v !== null && v !== undefined) svg.append(s('circle', { cx: x(t0), cy: y(Number(v)), r: 3, class: `dot series-${si}` }));
    }
    if (d) svg.append(s('path', { d, class: `line series-${si}`, 'vector-effect': 'non-scaling-stroke' }));
  });
  fig.append(svg);

  const legend = h('ul', { class: 'legend' });
  o.series.forEach((se, si) => {
    legend.append(h('li', null, [h('span', { class: `swatch series-${si}`, 'aria-hidden': 'true' }), h('span', { text: last[si] })]));
  });
  fig.append(legend);
  return fig;
}
