// Event log and data log (with charts).
import * as api from '../api.js';
import { h } from '../dom.js';
import { t, tOr } from '../i18n.js';
import { pageHeader, field, select, busy, loading, timeEl, toDate, num } from '../ui.js';
import { eventTitle } from '../words.js';
import { lineChart } from '../chart.js';

const SEVERITIES = ['info', 'warning', 'critical'];

function csvLink(url, labelKey, name) {
  return h('a', { class: 'btn btn-quiet', href: url, download: name, text: t(labelKey) });
}

export function renderEvents(root) {
  root.append(pageHeader('events.title', 'events.intro'));
  const sev = select([['', t('events.all')], ...SEVERITIES.map((x) => [x, t(`sev.${x}`)])], '');
  sev.id = 'event-severity';
  const search = h('input', { type: 'search', id: 'event-search', autocomplete: 'off' });
  const refresh = h('button', { type: 'button', class: 'btn', text: t('common.refresh'), id: 'event-refresh' });
  const bar = h('div', { class: 'toolbar' }, [
    field(t('events.severity'), sev),
    field(t('events.search'), search),
    h('div', { class: 'toolbar-actions' }, [refresh, csvLink(api.eventsCsvUrl(), 'events.csv', 'events.csv')]),
  ]);
  const count = h('p', { class: 'count', id: 'event-count', role: 'status' });
  const tableBox = h('div', { class: 'table-wrap', tabindex: '0', 'aria-label': t('events.title') });
  root.append(bar, count, tableBox);
  let rows = [];

  // Title from the stable id (translated); the server's English message is secondary detail
  // (only when it says more than the title). Unknown ids fall back to the server message.
  function describe(e) {
    const title = eventTitle(e);
    const msg = typeof e.message === 'string' ? e.message.trim() : '';
    if (title === null) return { title: msg || String(e.id || ''), detail: '' };
    return { title, detail: msg && msg.toLowerCase() !== title.toLowerCase() ? msg : '' };
  }

  function draw() {
    const want = sev.value;
    const needle = search.value.trim().toLowerCase();
    const shown = rows.filter((e) => {
      if (want && String(e.severity || '').toLowerCase() !== want) return false;
      if (needle) {
        const hay = `${e.id} ${describe(e).title} ${e.message} ${e.state} ${e.source}`.toLowerCase();
        if (!hay.includes(needle)) return false;
      }
      return true;
    });
    count.textContent = t('events.count', { n: shown.length, total: rows.length });
    if (shown.length === 0) {
      tableBox.replaceChildren(h('p', { class: 'empty', text: t('events.none') }));
      return;
    }
    const heads = ['events.time', 'events.severity', 'events.event', 'events.state', 'events.message', 'events.source'];
    const label = (i) => ({ 'data-label': t(heads[i]) });
    const tbody = h('tbody');
    for (const e of shown) {
      const sevText = String(e.severity || '').toLowerCase();
      const fields = e.fields && typeof e.fields === 'object'
        ? Object.entries(e.fields).map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`).join(', ')
        : '';
      const d = describe(e);
      const state = typeof e.state === 'string' && e.state ? tOr(`state.${e.state}`, e.state) : '';
      tbody.append(h('tr', { class: `sev-${sevText}`, 'data-event': e.id || '' }, [
        h('td', { class: 'ev-time', ...label(0) }, timeEl(e.ts)),
        h('td', { class: 'ev-sev', ...label(1) }, h('span', { class: `pill pill-${sevText}`, text: SEVERITIES.includes(sevText) ? t(`sev.${sevText}`) : String(e.severity || '') })),
        // One child per cell, so the phone layout's label + value grid has two columns.
        h('td', { class: 'ev-title', ...label(2) }, h('div', null, [h('span', { class: 'ev-name', text: d.title }), h('div', { class: 'subtle mono', text: e.id || '' })])),
        h('td', { class: 'ev-state', ...label(3), text: state === '—' ? '' : state }),
        h('td', { class: 'ev-detail', ...label(4) }, d.detail || fields ? h('div', null, [
          d.detail ? h('span', { class: 'ev-msg', lang: 'en', text: d.detail }) : null,
          fields ? h('div', { class: 'subtle mono', text: fields }) : null,
        ]) : null),
        h('td', { class: 'ev-source', ...label(5), text: e.source || '' }),
      ]));
    }
    const table = h('table', { class: 'data stack', id: 'event-table' }, [
      h('caption', { class: 'sr-only', text: t('events.title') }),
      h('thead', null, h('tr', null, heads.map((k) => h('th', { scope: 'col', text: t(k) })))),
      tbody,
    ]);
    tableBox.replaceChildren(table);
  }

  async function load() {
    tableBox.replaceChildren(loading());
    try {
      const r = await busy(refresh, () => api.events(1000));
      rows = Array.isArray(r.events) ? r.events.slice() : [];
      rows.sort((a, b) => String(b.ts).localeCompare(String(a.ts)));
      const known = new Set(SEVERITIES);
      for (const e of rows) {
        const v = String(e.severity || '').toLowerCase();
        if (v && !known.has(v)) {
          known.add(v);
          sev.append(h('option', { value: v, text: v }));
        }
      }
      draw();
    } catch {
      tableBox.replaceChildren(h('p', { class: 'empty', text: t('common.loadFailed') }));
    }
  }
  sev.addEventListener('change', draw);
  search.addEventListener('input', draw);
  refresh.addEventListener('click', load);
  load();
}

export function renderDatalog(root) {
  root.append(pageHeader('datalog.title', 'datalog.intro'));
  const limit = select([
    [60, t('datalog.last', { n: 60 })],
    [360, t('datalog.last', { n: 360 })],
    [1440, t('datalog.last', { n: 1440 })],
    [10080, t('datalog.last', { n: 10080 })],
  ], 1440);
  limit.id = 'datalog-limit';
  const refresh = h('button', { type: 'button', class: 'btn', text: t('common.refresh') });
  root.append(h('div', { class: 'toolbar' }, [
    field(t('datalog.samples'), limit),
    h('div', { class: 'toolbar-actions' }, [refresh, csvLink(api.datalogCsvUrl(), 'datalog.csv', 'datalog.csv')]),
  ]));
  const charts = h('div', { class: 'charts', id: 'datalog-charts' });
  const tableBox = h('details', { class: 'card' });
  root.append(charts, tableBox);

  async function load() {
    charts.replaceChildren(loading());
    let samples = [];
    try {
      const r = await busy(refresh, () => api.datalog(limit.value));
      samples = Array.isArray(r.samples) ? r.samples.slice() : [];
    } catch {
      charts.replaceChildren(h('p', { class: 'empty', text: t('common.loadFailed') }));
      return;
    }
    samples.sort((a, b) => (toDate(a.ts)?.getTime() ?? 0) - (toDate(b.ts)?.getTime() ?? 0));
    const times = samples.map((x) => toDate(x.ts));
    const col = (k, f = (v) => v) => samples.map((x) => (x[k] === null || x[k] === undefined ? null : f(Number(x[k]))));
    const empty = t('datalog.empty');
    charts.replaceChildren(
      lineChart({ title: t('datalog.voltages'), unit: 'V', times, empty, series: [
        { name: t('datalog.inputV'), values: col('input_v') },
        { name: t('datalog.outputV'), values: col('output_v') },
      ] }),
      lineChart({ title: t('datalog.battery'), unit: 'V', times, empty, series: [
        { name: t('datalog.batteryV'), values: col('battery_v') },
      ] }),
      lineChart({ title: t('datalog.loadCharge'), unit: '%', times, empty, min: 0, max: 100, series: [
        { name: t('datalog.load'), values: col('load_pct') },
        { name: t('datalog.charge'), values: col('charge_pct') },
      ] }),
      lineChart({ title: t('datalog.runtime'), unit: t('unit.min'), times, empty, min: 0, series: [
        { name: t('datalog.runtime'), values: col('runtime_s', (v) => v / 60) },
      ] }),
      lineChart({ title: t('datalog.temperature'), unit: '°C', times, empty, series: [
        { name: t('datalog.temperature'), values: col('temp_c') },
      ] }),
    );
    const recent = samples.slice(-50).reverse();
    const keys = ['input_v', 'output_v', 'freq_hz', 'load_pct', 'charge_pct', 'battery_v', 'runtime_s', 'temp_c'];
    tableBox.replaceChildren(
      h('summary', { text: t('datalog.table', { n: recent.length }) }),
      h('div', { class: 'table-wrap', tabindex: '0', 'aria-label': t('datalog.title') }, h('table', { class: 'data' }, [
        h('thead', null, h('tr', null, [h('th', { scope: 'col', text: t('events.time') }), ...keys.map((k) => h('th', { scope: 'col', text: t(`dl.${k}`) }))])),
        h('tbody', null, recent.map((x) => h('tr', null, [h('td', { class: 'nowrap' }, timeEl(x.ts)), ...keys.map((k) => h('td', { class: 'num', text: num(x[k], k === 'battery_v' ? 2 : k === 'runtime_s' ? 0 : 1) }))]))),
      ])),
    );
  }
  limit.addEventListener('change', load);
  refresh.addEventListener('click', load);
  load();
}
