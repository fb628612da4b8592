// Shared building blocks of the pages: headings, labelled fields, buttons, definition lists.
import { h, nextId } from './dom.js';
import { t, dateLocale } from './i18n.js';

export function pageHeader(titleKey, introKey) {
  const wrap = h('div', { class: 'page-header' }, [h('h1', { text: t(titleKey) })]);
  if (introKey) wrap.append(h('p', { class: 'intro', text: t(introKey) }));
  return wrap;
}

export function section(titleKey, children, extraClass) {
  const id = nextId('sec');
  return h('section', { class: ['card', extraClass], 'aria-labelledby': id }, [
    h('h2', { id, text: t(titleKey) }),
    ...[].concat(children),
  ]);
}

/** A label + control (+ hint, + error slot) wired together with for/id and aria-describedby. */
export function field(labelText, control, hintText) {
  const id = control.id || nextId('in');
  control.id = id;
  const parts = [h('label', { for: id, text: labelText })];
  const described = [];
  parts.push(control);
  if (hintText) {
    const hid = `${id}-hint`;
    parts.push(h('p', { class: 'hint', id: hid, text: hintText }));
    described.push(hid);
  }
  const eid = `${id}-err`;
  parts.push(h('p', { class: 'field-error', id: eid, hidden: true }));
  described.push(eid);
  control.setAttribute('aria-describedby', described.join(' '));
  return h('div', { class: 'field' }, parts);
}

export function fieldError(control, message) {
  const el = document.getElementById(`${control.id}-err`);
  if (!el) return;
  el.textContent = message || '';
  el.hidden = !message;
  if (message) control.setAttribute('aria-invalid', 'true');
  else control.removeAttribute('aria-invalid');
}

export function button(textKey, onclick, cls = 'btn') {
  return h('button', { type: 'button', class: cls, text: t(textKey), onclick });
}

/** Disable a button while `work` runs; returns work's result. */
export async function busy(btn, work) {
  btn.disabled = true;
  btn.setAttribute('aria-busy', 'true');
  try {
    return await work();
  } finally {
    btn.disabled = false;
    btn.removeAttribute('aria-busy');
  }
}

export function dl(rows) {
  const list = h('dl', { class: 'kv' });
  for (const [k, v, opts] of rows) {
    // A value is text, or a node (e.g. a <time> element) that goes in as it is.
    const dd = v instanceof Node ? h('dd', opts || null, v) : h('dd', { text: v, ...(opts || {}) });
    list.append(h('dt', { text: k }), dd);
  }
  return list;
}

export function select(options, value) {
  const sel = h('select');
  for (const o of options) {
    const [v, label] = Array.isArray(o) ? o : [o, o];
    const opt = h('option', { value: String(v), text: label });
    if (String(v) === String(value)) opt.selected = true;
    sel.append(opt);
  }
  return sel;
}

export function loading() {
  return h('p', { class: 'loading', text: t('common.loading') });
}

export function note(textKey, cls = 'note') {
  return h('p', { class: cls, text: t(textKey) });
}

// --- formatting --------------------------------------------------------------------------
export function num(v, digits = 0) {
  if (v === null || v === undefined || v === '' || Number.isNaN(Number(v))) return '—';
  return Number(v).toFixed(digits);
}

export function withUnit(v, unit, digits = 0) {
  const n = num(v, digits);
  return n === '—' ? n : `${n} ${unit}`;
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return '—';
  const s = Math.max(0, Math.round(Number(seconds)));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  if (hh > 0) return t('fmt.hm', { h: hh, m: mm });
  if (mm >= 10 || (mm > 0 && ss === 0)) return t('fmt.m', { m: mm });
  if (mm > 0) return t('fmt.ms', { m: mm, s: ss });
  return t('fmt.s', { s: ss });
}

/** Minutes and seconds always (a countdown): "4 min 05 s" style, hours when ≥ 1 h. */
export function countdown(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(Number(seconds))) return '—';
  const s = Math.max(0, Math.round(Number(seconds)));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  if (hh > 0) return t('fmt.hm', { h: hh, m: mm });
  if (mm > 0) return t('fmt.ms', { m: mm, s: ss });
  return t('fmt.s', { s: ss });
}

/** Whole seconds as "{n} s" (no conversion to minutes; for the parts of a sum). */
export function secs(seconds) {
  const n = Number(seconds);
  return Number.isFinite(n) ? t('fmt.s', { s: Math.round(n) }) : '—';
}

const fmtCache = new Map();
function dateFormat(kind) {
  const loc = dateLocale();
  const key = `${loc}|${kind}`;
  if (!fmtCache.has(key)) {
    const opts = {
      datetime: { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' },
      date: { year: 'numeric', month: '2-digit', day: '2-digit' },
      time: { hour: '2-digit', minute: '2-digit' },
      daymonth: { month: 'numeric', day: 'numeric' },
    }[kind];
    let f;
    try {
      f = new Intl.DateTimeFormat(loc, opts);
    } catch {
      f = new Intl.DateTimeFormat(undefined, opts);
    }
    fmtCache.set(key, f);
  }
  return fmtCache.get(key);
}

/**
 * A timestamp from the API (ISO-8601 UTC, or seconds/ms since the epoch) in the browser's
 * time zone and the locale of dateLocale(); `kind` is datetime, date, time or daymonth.
 */
export function timestamp(ts, kind = 'datetime') {
  if (ts === null || ts === undefined || ts === '') return '—';
  const d = ts instanceof Date ? ts : toDate(ts);
  if (!d) return String(ts);
  return dateFormat(kind).format(d);
}

/** A <time> element: localized text, the exact UTC instant in datetime= and the tooltip. */
export function timeEl(ts, attrs) {
  const d = toDate(ts);
  if (!d) return h('span', { ...(attrs || {}), text: ts === null || ts === undefined || ts === '' ? '—' : String(ts) });
  return h('time', { ...(attrs || {}), datetime: d.toISOString(), title: d.toISOString(), text: timestamp(d) });
}

export function toDate(ts) {
  if (ts instanceof Date) return Number.isNaN(ts.getTime()) ? null : ts;
  if (ts === null || ts === undefined || ts === '') return null;
  const d = typeof ts === 'number' ? new Date(ts > 1e12 ? ts : ts * 1000) : new Date(ts);
  return Number.isNaN(d.getTime()) ? null : d;
}
