// Configuration pages: shutdown, event configuration, schedules, UPS settings, network services.
import * as api from '../api.js';
import { h, nextId } from '../dom.js';
import { t, tOr } from '../i18n.js';
import { pageHeader, section, field, fieldError, select, busy, loading, note } from '../ui.js';
import { planSentence, shutdownState, upsValueText } from '../words.js';

// What the UI knows about keys of upsguard.ini (host/src/config/model.rs). Unknown keys
// still show, as text fields; the server validates everything either way.
const META = {
  // `when`: the field is shown only while the form's current values satisfy it (live).
  Shutdown: {
    policy: { type: 'enum', values: ['immediately', 'on_battery_delay', 'low_battery', 'threshold', 'low_runtime'] },
    on_battery_delay_s: { type: 'int', min: 1, max: 86400, when: (v) => v.policy === 'on_battery_delay' },
    low_battery_runtime_s: { type: 'int', min: 0, max: 7200, when: (v) => v.policy === 'low_battery' },
    threshold_charge_pct: { type: 'int', min: 0, max: 100, when: (v) => v.policy === 'threshold' },
    threshold_runtime_min: { type: 'int', min: 0, max: 1440, when: (v) => v.policy === 'threshold' },
    command_file: { type: 'text' },
    command_file_duration_s: { type: 'int', min: 0, max: 3600 },
    os_shutdown_command: { type: 'text' },
    os_shutdown_duration_s: { type: 'int', min: 10, max: 3600 },
    turn_off_ups: { type: 'bool' },
    ups_off_mode: { type: 'enum', values: ['return', 'stay_off', 'sleep'], when: (v) => isTrue(v.turn_off_ups) },
    sleep_hours: { type: 'int', min: 1, max: 99, when: (v) => isTrue(v.turn_off_ups) && v.ups_off_mode === 'sleep' },
    comm_lost_on_battery_shutdown: { type: 'bool' },
    comm_lost_on_battery_delay_s: { type: 'int', min: 0, max: 3600, when: (v) => isTrue(v.comm_lost_on_battery_shutdown) },
  },
  Logging: {
    event_log_max_kb: { type: 'int', min: 256, max: 1048576 },
    event_log_files: { type: 'int', min: 2, max: 100 },
    datalog_interval_s: { type: 'int', min: 10, max: 3600 },
    datalog_max_kb: { type: 'int', min: 1024, max: 4194304 },
    datalog_files: { type: 'int', min: 2, max: 100 },
  },
  Web: {
    bind: { type: 'text' },
    port: { type: 'int', min: 1, max: 65535 },
    idle_timeout_min: { type: 'int', min: 1, max: 1440 },
  },
  SNMP: { enabled: { type: 'bool' }, port: { type: 'int', min: 1, max: 65535 }, trap_port: { type: 'int', min: 1, max: 65535 } },
  NUT: { enabled: { type: 'bool' }, port: { type: 'int', min: 1, max: 65535 } },
  NIS: { enabled: { type: 'bool' }, port: { type: 'int', min: 1, max: 65535 } },
};

const isTrue = (v) => v === true || (typeof v === 'string' && /^(true|yes|on|1)$/i.test(v));

function humanize(key) {
  return key.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());
}

/**
 * A form for one config section: loads it, shows a control per key, PUTs changed keys.
 * `groups`: [{titleKey, hintKey, keys}] puts those keys, in that order, into fieldsets (keys
 * of no group follow in an "Other settings" fieldset). `onValues(values, dirty, original)` is
 * called after loading and on every edit. `notes`: nodes shown above the fields.
 */
export function configForm(sectionName, ctx, { titleKey, introKey, keys, groups, onValues, notes } = {}) {
  const form = h('form', { class: 'card config-form', 'data-section': sectionName, 'aria-labelledby': `${sectionName}-h` });
  const title = h('h2', { id: `${sectionName}-h`, text: t(titleKey || `section.${sectionName}`) });
  const body = h('div', { class: 'fields' }, loading());
  const save = h('button', { type: 'submit', class: 'btn btn-primary', text: t('common.save'), disabled: true });
  const reset = h('button', { type: 'button', class: 'btn btn-quiet', text: t('common.revert'), disabled: true });
  form.append(title);
  for (const n of [].concat(notes || [])) form.append(n);
  if (introKey) form.append(h('p', { class: 'intro', text: t(introKey) }));
  form.append(body, h('div', { class: 'actions' }, [save, reset]));
  let original = {};
  let controls = {};
  let wraps = {};

  function control(key, value) {
    const m = (META[sectionName] || {})[key] || {};
    const id = `cfg-${sectionName}-${key}`;
    const label = tOr(`cfg.${key}`, humanize(key));
    const hintKey = `cfgHint.${key}`;
    let hint = tOr(hintKey, '');
    if (m.type === 'int') hint = [hint, t('common.range', { min: m.min, max: m.max })].filter(Boolean).join(' ');
    if (m.type === 'bool' || typeof value === 'boolean') {
      const cb = h('input', { type: 'checkbox', id, name: key });
      cb.checked = isTrue(value);
      return [cb, h('div', { class: 'field field-check' }, [cb, h('label', { for: id, text: label }), hint ? h('p', { class: 'hint', text: hint }) : null])];
    }
    if (m.type === 'enum') {
      const sel = select(m.values.map((v) => [v, tOr(`enum.${v}`, v)]), value);
      sel.id = id;
      sel.name = key;
      if (!m.values.includes(String(value))) sel.prepend(h('option', { value: String(value), text: String(value), selected: true }));
      return [sel, field(label, sel, hint)];
    }
    const shown = Array.isArray(value) ? value.join(', ') : value === null || value === undefined ? '' : String(value);
    const input = h('input', { id, name: key, type: m.type === 'int' ? 'number' : 'text', value: shown, autocomplete: 'off', spellcheck: 'false' });
    if (m.type === 'int') {
      input.min = String(m.min);
      input.max = String(m.max);
      input.step = '1';
      input.inputMode = 'numeric';
    }
    return [input, field(label, input, hint)];
  }

  function valueOf(key) {
    const c = controls[key];
    const orig = original[key];
    if (c.type === 'checkbox') {
      if (typeof orig === 'boolean') return c.checked;
      return c.checked ? 'true' : 'false';
    }
    const raw = c.value;
    if (typeof orig === 'number') return raw.trim() === '' ? raw : Number(raw);
    if (Array.isArray(orig)) return raw.split(',').map((x) => x.trim()).filter(Boolean);
    return raw;
  }

  function changed() {
    const out = {};
    for (const key of Object.keys(controls)) {
      const v = valueOf(key);
      if (JSON.stringify(v) !== JSON.stringify(original[key])) out[key] = v;
    }
    return out;
  }

  /** The form's current values as the INI spells them (checkboxes as "true"/"false"). */
  function current() {
    const out = {};
    for (const [key, c] of Object.entries(controls)) out[key] = c.type === 'checkbox' ? (c.checked ? 'true' : 'false') : c.value;
    return out;
  }

  /** Show only the fields that apply to the current values (META `when`). */
  function applyVisibility() {
    const v = current();
    for (const [key, wrap] of Object.entries(wraps)) {
      const m = (META[sectionName] || {})[key] || {};
      wrap.hidden = typeof m.when === 'function' ? !m.when(v) : false;
    }
  }

  function refreshButtons() {
    const dirty = Object.keys(changed()).length > 0;
    save.disabled = !dirty;
    reset.disabled = !dirty;
    applyVisibility();
    if (onValues) onValues(current(), dirty, original);
  }

  async function load() {
    body.replaceChildren(loading());
    try {
      original = await api.config(sectionName);
    } catch {
      body.replaceChildren(h('p', { class: 'empty', text: t('common.loadFailed') }));
      return;
    }
    controls = {};
    wraps = {};
    const wanted = keys ? keys.filter((k) => Object.hasOwn(original, k)) : Object.keys(original);
    const build = (key) => {
      const [c, wrap] = control(key, original[key]);
      controls[key] = c;
      wraps[key] = wrap;
      wrap.setAttribute('data-key', key);
      c.addEventListener('input', refreshButtons);
      c.addEventListener('change', refreshButtons);
      return wrap;
    };
    if (groups) {
      const placed = new Set();
      const sets = [];
      const fieldset = (titleText, hintText, list, name) => h('fieldset', { class: 'group', 'data-group': name }, [
        h('legend', { text: titleText }),
        hintText ? h('p', { class: 'hint group-hint', text: hintText }) : null,
        ...list.map(build),
      ]);
      for (const g of groups) {
        const list = g.keys.filter((k) => wanted.includes(k));
        list.forEach((k) => placed.add(k));
        if (list.length) sets.push(fieldset(t(g.titleKey), g.hintKey ? t(g.hintKey) : '', list, g.titleKey));
      }
      const rest = wanted.filter((k) => !placed.has(k));
      if (rest.length) sets.push(fieldset(t('shutdown.grpOther'), '', rest, 'other'));
      body.replaceChildren(...sets);
    } else {
      body.replaceChildren(...wanted.map(build));
    }
    if (wanted.length === 0) body.replaceChildren(h('p', { class: 'empty', text: t('common.nothing') }));
    refreshButtons();
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const diff = changed();
    if (Object.keys(diff).length === 0) return;
    for (const c of Object.values(controls)) fieldError(c, '');
    try {
      await busy(save, () => api.setConfig(sectionName, diff));
      ctx.notify(t('common.saved'));
      await load();
      form.dispatchEvent(new CustomEvent('saved'));
    } catch (err) {
      // The API layer showed the server's message; the refused field gets it too.
      const key = err && err.body && typeof err.body.key === 'string' ? err.body.key : '';
      const c = Object.entries(controls).find(([k]) => k.toLowerCase() === key.toLowerCase());
      if (c) {
        fieldError(c[1], err.message);
        c[1].focus();
      }
    }
  });
  reset.addEventListener('click', load);
  load();
  return form;
}

// --- Shutdown ------------------------------------------------------------------------------
const SHUTDOWN_GROUPS = [
  { titleKey: 'shutdown.grpPolicy', hintKey: 'shutdown.policyHint', keys: ['policy', 'on_battery_delay_s', 'low_battery_runtime_s', 'threshold_charge_pct', 'threshold_runtime_min'] },
  { titleKey: 'shutdown.grpSequence', keys: ['command_file', 'command_file_duration_s', 'os_shutdown_command', 'os_shutdown_duration_s'] },
  { titleKey: 'shutdown.grpUps', keys: ['turn_off_ups', 'ups_off_mode', 'sleep_hours'] },
  { titleKey: 'shutdown.grpComm', keys: ['comm_lost_on_battery_shutdown', 'comm_lost_on_battery_delay_s'] },
];

/** The status's shutdown object with the form's (unsaved) [Shutdown] values laid over it. */
function planWith(sd, v) {
  const n = (x, d) => (x === undefined || x === null || String(x).trim() === '' || !Number.isFinite(Number(x)) ? d : Number(x));
  const o = { ...sd };
  if (v.policy) o.policy = v.policy;
  o.on_battery_delay_s = n(v.on_battery_delay_s, sd.on_battery_delay_s);
  o.low_battery_runtime_s = n(v.low_battery_runtime_s, sd.low_battery_runtime_s);
  o.threshold_charge_pct = n(v.threshold_charge_pct, sd.threshold_charge_pct);
  o.threshold_runtime_s = v.threshold_runtime_min === undefined ? sd.threshold_runtime_s : n(v.threshold_runtime_min, 0) * 60;
  o.command_file_s = n(v.command_file_duration_s, sd.command_file_s);
  o.os_shutdown_s = n(v.os_shutdown_duration_s, sd.os_shutdown_s);
  o.low_runtime_s = n(o.command_file_s, 0) + n(o.os_shutdown_s, 0) + n(sd.margin_s, 0);
  o.plan = '';
  return o;
}

export function renderShutdown(root, ctx) {
  root.append(pageHeader('shutdown.title', 'shutdown.intro'));

  // The plan first: what the saved settings do, and what the edited ones would do.
  const planText = h('p', { class: 'plan-text', id: 'shutdown-plan' }, loading());
  const planLabel = h('p', { class: 'hint', id: 'shutdown-plan-label' });
  root.append(h('section', { class: 'card plan-card', 'aria-labelledby': 'plan-h' }, [h('h2', { id: 'plan-h', text: t('plan.title') }), planLabel, planText]));
  let sd = null;
  let formValues = null;
  let formDirty = false;
  function drawPlan() {
    if (!sd) {
      planLabel.textContent = '';
      planText.textContent = t('plan.unavailable');
      planText.classList.add('empty');
      return;
    }
    planText.classList.remove('empty');
    const shown = formDirty && formValues ? planWith(sd, formValues) : sd;
    planLabel.textContent = t(formDirty ? 'plan.unsaved' : 'plan.current');
    planText.textContent = planSentence(shown) || sd.plan || '—';
    planText.dataset.policy = shown.policy || '';
  }
  async function loadPlan() {
    try {
      const st = await api.status();
      const s0 = shutdownState(st);
      sd = s0.structured ? s0 : null;
    } catch {
      sd = null;
    }
    drawPlan();
  }

  const form = configForm('Shutdown', ctx, {
    titleKey: 'shutdown.settings',
    groups: SHUTDOWN_GROUPS,
    onValues: (values, dirty) => {
      formValues = values;
      formDirty = dirty;
      if (sd) drawPlan();
    },
  });
  form.addEventListener('saved', loadPlan);
  root.append(form);
  loadPlan();

  const hours = h('input', { type: 'number', min: 1, max: 99, step: 1, value: 1, id: 'sleep-hours', inputmode: 'numeric' });
  const graceful = h('input', { type: 'checkbox', id: 'sleep-graceful', checked: true, 'aria-describedby': 'sleep-graceful-hint' });
  const sleepBtn = h('button', { type: 'button', class: 'btn btn-warn', text: t('shutdown.sleepBtn'), id: 'sleep-start' });
  const nowBtn = h('button', { type: 'button', class: 'btn btn-danger', text: t('shutdown.nowBtn'), id: 'shutdown-now' });
  sleepBtn.addEventListener('click', async () => {
    const question = graceful.checked ? 'shutdown.sleepConfirm' : 'shutdown.sleepConfirmRaw';
    if (!window.confirm(t(question, { h: hours.value }))) return;
    try {
      await busy(sleepBtn, () => api.sleep(Number(hours.value), graceful.checked));
      ctx.notify(t('shutdown.started'));
    } catch { /* shown */ }
  });
  nowBtn.addEventListener('click', async () => {
    if (!window.confirm(t('shutdown.nowConfirm'))) return;
    try {
      await busy(nowBtn, () => api.shutdownNow());
      ctx.notify(t('shutdown.started'));
    } catch { /* shown */ }
  });
  root.append(section('shutdown.actions', [
    note('shutdown.actionsNote', 'note note-warn'),
    h('div', { class: 'inline-form' }, [
      field(t('shutdown.sleepHours'), hours),
      h('div', { class: 'field field-check' }, [
        graceful,
        h('label', { for: 'sleep-graceful', text: t('shutdown.graceful') }),
        h('p', { class: 'hint', id: 'sleep-graceful-hint', text: t('shutdown.gracefulHint') }),
      ]),
      h('div', { class: 'actions' }, [sleepBtn]),
    ]),
    h('div', { class: 'actions' }, [nowBtn]),
  ]));
}

// --- Event configuration -------------------------------------------------------------------
/** Parse an [Events] value: "log, notify, command_file:x.sh:30, shutdown:60". */
export function parseActions(value) {
  const a = { log: false, notify: false, cmd: '', cmdDur: '', shutdown: false, delay: '' };
  for (const raw of String(value || '').split(',')) {
    const item = raw.trim();
    if (!item || item.toLowerCase() === 'none') continue;
    const [word, ...rest] = item.split(':');
    switch (word.toLowerCase()) {
      case 'log': a.log = true; break;
      case 'notify': a.notify = true; break;
      case 'command_file': a.cmd = rest[0] || ''; a.cmdDur = rest[1] || ''; break;
      case 'shutdown': a.shutdown = true; a.delay = rest[0] || ''; break;
      default: break;
    }
  }
  return a;
}

export function formatActions(a) {
  const out = [];
  if (a.log) out.push('log');
  if (a.notify) out.push('notify');
  if (a.cmd) out.push(a.cmdDur !== '' ? `command_file:${a.cmd}:${a.cmdDur}` : `command_file:${a.cmd}`);
  if (a.shutdown) out.push(a.delay !== '' ? `shutdown:${a.delay}` : 'shutdown');
  return out.length ? out.join(', ') : 'none';
}

export function renderEventConfig(root, ctx) {
  root.append(pageHeader('eventcfg.title', 'eventcfg.intro'));
  const card = h('form', { class: 'card', 'aria-labelledby': 'eventcfg-h' }, [h('h2', { id: 'eventcfg-h', text: t('eventcfg.actions') })]);
  const box = h('div', { class: 'table-wrap' }, loading());
  const save = h('button', { type: 'submit', class: 'btn btn-primary', text: t('common.save') });
  card.append(note('eventcfg.grammar', 'hint'), box, h('div', { class: 'actions' }, [save]));
  root.append(card);
  let original = {};
  const rows = {};

  async function load() {
    try {
      original = await api.config('Events');
    } catch {
      box.replaceChildren(h('p', { class: 'empty', text: t('common.loadFailed') }));
      return;
    }
    const tbody = h('tbody');
    for (const [id, value] of Object.entries(original)) {
      const a = parseActions(value);
      const name = tOr(`ev.${id}`, humanize(id));
      const lab = (txt) => ({ 'aria-label': `${name}: ${txt}` });
      const log = h('input', { type: 'checkbox', ...lab(t('eventcfg.log')) });
      log.checked = a.log;
      const notifyCb = h('input', { type: 'checkbox', ...lab(t('eventcfg.notify')) });
      notifyCb.checked = a.notify;
      const cmd = h('input', { type: 'text', value: a.cmd, size: 12, class: 'mono', ...lab(t('eventcfg.cmd')) });
      const cmdDur = h('input', { type: 'number', min: 0, max: 3600, value: a.cmdDur, class: 'narrow', ...lab(t('eventcfg.cmdDur')) });
      const shut = h('input', { type: 'checkbox', ...lab(t('eventcfg.shutdown')) });
      shut.checked = a.shutdown;
      const delay = h('input', { type: 'number', min: 0, max: 86400, value: a.delay, class: 'narrow', ...lab(t('eventcfg.delay')) });
      rows[id] = { log, notifyCb, cmd, cmdDur, shut, delay };
      tbody.append(h('tr', null, [
        h('th', { scope: 'row' }, [h('span', { text: name }), h('div', { class: 'subtle mono', text: id })]),
        h('td', { class: 'center' }, log),
        h('td', { class: 'center' }, notifyCb),
        h('td', null, h('div', { class: 'pair' }, [cmd, cmdDur])),
        h('td', null, h('div', { class: 'pair' }, [shut, delay])),
      ]));
    }
    box.replaceChildren(h('table', { class: 'data', id: 'eventcfg-table' }, [
      h('thead', null, h('tr', null, ['eventcfg.event', 'eventcfg.log', 'eventcfg.notify', 'eventcfg.cmdBoth', 'eventcfg.shutdownBoth'].map((k) => h('th', { scope: 'col', text: t(k) })))),
      tbody,
    ]));
  }

  card.addEventListener('submit', async (e) => {
    e.preventDefault();
    const diff = {};
    for (const [id, r] of Object.entries(rows)) {
      const v = formatActions({ log: r.log.checked, notify: r.notifyCb.checked, cmd: r.cmd.value.trim(), cmdDur: r.cmdDur.value.trim(), shutdown: r.shut.checked, delay: r.delay.value.trim() });
      if (v !== formatActions(parseActions(original[id]))) diff[id] = v;
    }
    if (Object.keys(diff).length === 0) {
      ctx.notify(t('common.noChanges'));
      return;
    }
    try {
      await busy(save, () => api.setConfig('Events', diff));
      ctx.notify(t('common.saved'));
      load();
    } catch { /* shown */ }
  });
  load();
  root.append(configForm('Logging', ctx, { titleKey: 'section.Logging', introKey: 'logging.intro' }));
}

// --- Schedules -------------------------------------------------------------------------------
const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

export function renderSchedules(root, ctx) {
  root.append(pageHeader('schedules.title', 'schedules.intro'));
  const listCard = section('schedules.current', [h('div', { class: 'table-wrap', id: 'schedule-list' }, loading())]);
  root.append(listCard);
  const listBox = listCard.querySelector('#schedule-list');

  async function load() {
    let cur;
    try {
      cur = await api.config('Schedule');
    } catch {
      listBox.replaceChildren(h('p', { class: 'empty', text: t('common.loadFailed') }));
      return;
    }
    const names = Object.keys(cur);
    if (names.length === 0) {
      listBox.replaceChildren(h('p', { class: 'empty', text: t('schedules.none') }));
      return;
    }
    listBox.replaceChildren(h('table', { class: 'data' }, [
      h('thead', null, h('tr', null, ['schedules.name', 'schedules.spec', 'common.actions'].map((k) => h('th', { scope: 'col', text: t(k) })))),
      h('tbody', null, names.map((n) => {
        const del = h('button', { type: 'button', class: 'btn btn-quiet btn-small', text: t('common.delete'), 'aria-label': `${t('common.delete')} ${n}` });
        del.addEventListener('click', async () => {
          if (!window.confirm(t('schedules.deleteConfirm', { n }))) return;
          try {
            await busy(del, () => api.setConfig('Schedule', { [n]: '' }));
            ctx.notify(t('common.saved'));
            load();
          } catch { /* shown */ }
        });
        return h('tr', null, [h('td', { class: 'mono', text: n }), h('td', { class: 'mono', text: String(cur[n]) }), h('td', null, del)]);
      })),
    ]));
  }

  // Builder for a new schedule.
  const name = h('input', { type: 'text', pattern: '[a-z0-9_]{1,32}', maxlength: 32, required: true, autocomplete: 'off', spellcheck: 'false' });
  const kind = select([['daily', t('schedules.daily')], ['weekly', t('schedules.weekly')], ['once', t('schedules.once')]], 'daily');
  const dayOpts = DAYS.map((d) => [d, t(`day.${d}`)]);
  const day = select(dayOpts, 'sat');
  const wakeDay = select(dayOpts, 'sun');
  const date = h('input', { type: 'date' });
  const wakeDate = h('input', { type: 'date' });
  const at = h('input', { type: 'time', value: '23:00', required: true });
  const wake = h('input', { type: 'time', value: '07:00', required: true });
  const preview = h('output', { class: 'mono preview', id: 'schedule-preview' });
  const add = h('button', { type: 'submit', class: 'btn btn-primary', text: t('schedules.add') });
  const dayField = field(t('schedules.day'), day);
  const wakeDayField = field(t('schedules.wakeDay'), wakeDay);
  const dateField = field(t('schedules.date'), date);
  const wakeDateField = field(t('schedules.wakeDate'), wakeDate);

  function spec() {
    const k = kind.value;
    if (k === 'daily') return `daily ${at.value} wake ${wake.value}`;
    if (k === 'weekly') return `weekly ${day.value} ${at.value} wake ${wakeDay.value} ${wake.value}`;
    return `once ${date.value}T${at.value} wake ${wakeDate.value}T${wake.value}`;
  }
  function update() {
    const k = kind.value;
    dayField.hidden = k !== 'weekly';
    wakeDayField.hidden = k !== 'weekly';
    dateField.hidden = k !== 'once';
    wakeDateField.hidden = k !== 'once';
    preview.textContent = spec();
  }
  for (const c of [kind, day, wakeDay, date, wakeDate, at, wake]) {
    c.addEventListener('input', update);
    c.addEventListener('change', update);
  }
  const form = h('form', { class: 'card', 'aria-labelledby': 'sched-add-h' }, [
    h('h2', { id: 'sched-add-h', text: t('schedules.new') }),
    note('schedules.windowNote', 'hint'),
    h('div', { class: 'grid-form' }, [
      field(t('schedules.name'), name, t('schedules.nameHint')),
      field(t('schedules.kind'), kind),
      dayField, dateField,
      field(t('schedules.at'), at),
      wakeDayField, wakeDateField,
      field(t('schedules.wake'), wake),
    ]),
    h('p', null, [h('span', { text: `${t('schedules.spec')}: ` }), preview]),
    h('div', { class: 'actions' }, [add]),
  ]);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const n = name.value.trim().toLowerCase();
    if (!/^[a-z0-9_]{1,32}$/.test(n)) {
      ctx.showError(t('schedules.badName'));
      name.focus();
      return;
    }
    try {
      await busy(add, () => api.setConfig('Schedule', { [n]: spec() }));
      ctx.notify(t('common.saved'));
      name.value = '';
      load();
    } catch { /* shown */ }
  });
  update();
  root.append(form);
  load();
}

// --- UPS settings ----------------------------------------------------------------------------
export function renderUps(root, ctx) {
  root.append(pageHeader('ups.title', 'ups.intro'));
  const box = h('div', { class: 'fields', id: 'ups-settings' }, loading());
  root.append(h('div', { class: 'card' }, [box]));

  async function load() {
    let list;
    try {
      list = await api.upsSettings();
    } catch {
      box.replaceChildren(h('p', { class: 'empty', text: t('common.loadFailed') }));
      return;
    }
    if (list.length === 0) {
      box.replaceChildren(h('p', { class: 'empty', text: t('ups.none') }));
      return;
    }
    box.replaceChildren(...list.map((st) => {
      const cur = st.value === null || st.value === undefined ? '' : String(st.value);
      const permitted = (Array.isArray(st.permitted) ? st.permitted : []).map(String);
      if (cur !== '' && !permitted.includes(cur)) permitted.unshift(cur);
      // Option text "336 — every 14 days"; the value submitted stays the UPS's code.
      const sel = select(permitted.length ? permitted.map((v) => [v, upsValueText(st.name, v)]) : [['', '—']], cur);
      if (permitted.length < 2) sel.disabled = true;
      sel.id = nextId('ups');
      sel.setAttribute('data-setting', st.name);
      const apply = h('button', { type: 'button', class: 'btn', text: t('common.apply'), disabled: true, 'aria-label': `${t('common.apply')}: ${tOr(`upsSet.${st.name}`, st.name)}` });
      sel.addEventListener('change', () => { apply.disabled = sel.value === cur; });
      apply.addEventListener('click', async () => {
        try {
          await busy(apply, () => api.setUpsSetting(st.name, sel.value));
          ctx.notify(t('ups.applied', { name: tOr(`upsSet.${st.name}`, st.name), value: upsValueText(st.name, sel.value) }));
          load();
        } catch { /* shown */ }
      });
      return h('div', { class: 'row-setting' }, [field(tOr(`upsSet.${st.name}`, humanize(st.name)), sel, t('ups.current', { v: upsValueText(st.name, cur) })), apply]);
    }));
  }
  load();
}

// --- Network services ------------------------------------------------------------------------
export function renderNetwork(root, ctx) {
  root.append(pageHeader('network.title', 'network.intro'));
  // Not implemented yet (issue 7): say so beside each section, before its settings.
  const notImpl = (proto) => h('p', { class: 'note note-warn not-implemented', 'data-service': proto, text: t('network.notImpl', { proto }) });
  root.append(configForm('SNMP', ctx, { introKey: 'network.snmpNote', notes: notImpl('SNMP') }));
  root.append(configForm('NUT', ctx, { introKey: 'network.nutNote', notes: notImpl('NUT') }));
  root.append(configForm('NIS', ctx, { introKey: 'network.nisNote', notes: notImpl('NIS') }));
  root.append(section('network.metrics', [note('network.metricsNote')]));
}

