// Live status dashboard: polls /status every 2 s.
import * as api from '../api.js';
import { h } from '../dom.js';
import { t } from '../i18n.js';
import { pageHeader, dl, withUnit, duration, num } from '../ui.js';

const POLL_MS = 2000;

/** Badge kind and text key from the NUT-style status tokens and the comm state. */
export function classify(st) {
  const comm = st.comm;
  // comm is `connecting`, `online`, `lost` or `closed` (host/src/status.rs).
  const commLost = comm === false || (typeof comm === 'string' && /^(lost|closed)$/i.test(comm));
  const tokens = String(st.status || '').toUpperCase().split(/\s+/).filter(Boolean);
  if (commLost) return { kind: 'unknown', key: 'badge.commLost', tokens };
  if (tokens.length === 0 && comm === 'connecting') return { kind: 'unknown', key: 'badge.connecting', tokens };
  if (tokens.includes('OFF')) return { kind: 'off', key: 'badge.off', tokens };
  if (tokens.includes('LB')) return { kind: 'critical', key: 'badge.lowBattery', tokens };
  if (tokens.includes('OB')) return { kind: 'warning', key: 'badge.onBattery', tokens };
  if (tokens.includes('OL')) return { kind: 'ok', key: 'badge.online', tokens };
  return { kind: 'unknown', key: 'badge.unknown', tokens };
}

function meter(label, value, max, unit) {
  const v = Number(value);
  const known = value !== null && value !== undefined && !Number.isNaN(v);
  const m = h('meter', { min: 0, max, value: known ? Math.min(Math.max(v, 0), max) : 0, 'aria-label': label });
  if (max === 100) {
    m.setAttribute('low', '30');
    m.setAttribute('high', '80');
    m.setAttribute('optimum', label === t('status.load') ? '0' : '100');
  }
  return h('div', { class: 'tile' }, [
    h('div', { class: 'tile-label', text: label }),
    h('div', { class: 'tile-value', text: known ? `${num(v)} ${unit}` : '—' }),
    m,
  ]);
}

function tile(label, value, sub) {
  return h('div', { class: 'tile' }, [
    h('div', { class: 'tile-label', text: label }),
    h('div', { class: 'tile-value', text: value }),
    sub ? h('div', { class: 'tile-sub', text: sub }) : null,
  ]);
}

export function render(root) {
  root.append(pageHeader('status.title'));
  const badgeBox = h('div', { class: 'status-hero', id: 'status-hero' });
  const tiles = h('div', { class: 'tiles', id: 'status-tiles' });
  const details = h('section', { class: 'card', 'aria-labelledby': 'details-h' });
  const stale = h('p', { class: 'stale', id: 'status-stale', role: 'status', hidden: true });
  root.append(badgeBox, stale, tiles, details);
  badgeBox.append(h('p', { class: 'loading', text: t('common.loading') }));

  let timer = 0;
  let stopped = false;
  let failures = 0;
  let polls = 0;

  function draw(st) {
    const c = classify(st);
    const badge = h('div', { class: `badge badge-${c.kind}`, id: 'status-badge', 'data-status': st.status || '' }, [
      h('span', { class: 'badge-tokens', text: c.tokens.join(' ') || '?' }),
      h('span', { class: 'badge-text', text: t(c.key) }),
    ]);
    const info = h('div', { class: 'hero-info' }, [
      h('p', { class: 'hero-model', id: 'status-model', text: st.model || '—' }),
      st.status_text ? h('p', { class: 'hero-text', text: st.status_text }) : null,
      st.shutdown_phase && st.shutdown_phase !== 'idle' && st.shutdown_phase !== 'none'
        ? h('p', { class: 'hero-phase', text: t('status.phase', { p: st.shutdown_phase }) })
        : null,
    ]);
    badgeBox.replaceChildren(badge, info);
    const top = document.getElementById('top-status');
    if (top) {
      top.hidden = false;
      top.className = `brand-badge badge-${c.kind}`;
      top.textContent = c.tokens.join(' ') || '?';
      top.title = t(c.key);
    }

    tiles.replaceChildren(
      meter(t('status.charge'), st.charge_pct, 100, '%'),
      tile(t('status.runtime'), duration(st.runtime_s)),
      meter(t('status.load'), st.load_pct, 100, '%'),
      tile(t('status.inputV'), withUnit(st.input_voltage, 'V', 1), t('status.freq', { f: num(st.frequency_hz, 1) })),
      tile(t('status.outputV'), withUnit(st.output_voltage, 'V', 1)),
      tile(t('status.batteryV'), withUnit(st.battery_voltage, 'V', 2)),
      tile(t('status.temperature'), withUnit(st.temperature_c, '°C', 1)),
    );

    details.replaceChildren(
      h('h2', { id: 'details-h', text: t('status.details') }),
      dl([
        [t('status.model'), st.model || '—', { id: 'detail-model' }],
        [t('status.serial'), st.serial || '—'],
        [t('status.firmware'), st.firmware || '—'],
        [t('status.comm'), typeof st.comm === 'boolean' ? (st.comm ? t('common.ok') : t('badge.commLost')) : String(st.comm ?? '—')],
        [t('status.statusCode'), st.status || '—', { id: 'detail-status' }],
        [t('status.lastTransfer'), st.last_transfer || '—'],
        [t('status.selfTest'), st.self_test || '—'],
        [t('status.transferHigh'), withUnit(st.transfer_high_v, 'V')],
        [t('status.transferLow'), withUnit(st.transfer_low_v, 'V')],
        [t('status.shutdownPhase'), st.shutdown_phase || '—'],
        [t('status.age'), st.status_age_ms === undefined ? '—' : t('status.ageMs', { ms: num(st.status_age_ms) })],
      ]),
    );
  }

  async function poll() {
    if (stopped) return;
    try {
      // The first load follows a click; the refreshes after it are background requests.
      const st = await api.status(polls > 0);
      polls += 1;
      if (stopped) return;
      failures = 0;
      stale.hidden = true;
      draw(st);
    } catch (err) {
      if (stopped) return;
      failures += 1;
      stale.hidden = false;
      stale.textContent = t('status.stale', { msg: err.message || '' });
    }
    if (!stopped) timer = setTimeout(poll, failures > 3 ? POLL_MS * 3 : POLL_MS);
  }
  poll();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
