// Live status dashboard: polls /status every 2 s.
import * as api from '../api.js';
import { h } from '../dom.js';
import { t } from '../i18n.js';
import { pageHeader, dl, withUnit, duration, countdown, num, timestamp, timeEl } from '../ui.js';
import { statusText, statusTokens, commText, selfTestText, transferText, shutdownState, inProgress, planSentence, phaseText, reasonText, policyText } from '../words.js';

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

/**
 * The shutdown part of the hero: what is happening now (in progress / countdown / completed)
 * and the plan sentence. `sd` is words.shutdownState(st).
 */
function shutdownLines(st, sd, countdownBox) {
  const out = [];
  const reason = reasonText(sd.reason);
  const withReason = (text) => (reason ? `${text} — ${t('status.reason', { r: reason })}` : text);
  const startsIn = sd.structured && sd.starts_in_s !== null && sd.starts_in_s !== undefined && Number.isFinite(Number(sd.starts_in_s))
    ? Number(sd.starts_in_s)
    : null;
  if (inProgress(sd.phase)) {
    out.push(h('p', { class: 'hero-phase', id: 'shutdown-progress', 'data-phase': sd.phase, text: withReason(t('status.phase', { p: phaseText(sd.phase) })) }));
    if (sd.since) out.push(h('p', { class: 'hero-sub', text: t('status.since', { t: timestamp(sd.since) }) }));
  } else if (sd.phase === 'completed') {
    out.push(h('p', {
      class: 'hero-done',
      id: 'shutdown-completed',
      text: sd.completed_at ? t('status.completedAt', { t: timestamp(sd.completed_at) }) : t('status.completed'),
    }));
  } else if (startsIn !== null && (sd.phase === 'pending' || sd.phase === 'idle')) {
    // During an outage: the estimate, counted down locally between polls.
    countdownBox.deadline = Date.now() + startsIn * 1000;
    countdownBox.el = h('p', { class: 'hero-countdown', id: 'shutdown-countdown', 'data-phase': sd.phase });
    countdownBox.reason = sd.phase === 'pending' ? reason : '';
    countdownBox.tick();
    out.push(countdownBox.el);
  } else if (sd.phase === 'pending') {
    // An older server: pending, without an estimate.
    out.push(h('p', { class: 'hero-countdown', id: 'shutdown-countdown', 'data-phase': sd.phase, text: withReason(phaseText('pending')) }));
  } else if (sd.phase && sd.phase !== 'idle') {
    out.push(h('p', { class: 'hero-phase', id: 'shutdown-progress', text: t('status.phase', { p: phaseText(sd.phase) }) }));
  }
  if (sd.structured) {
    const plan = planSentence(sd);
    if (plan) out.push(h('p', { class: 'hero-plan', id: 'shutdown-plan', 'data-policy': sd.policy || '' }, [h('span', { class: 'hero-plan-label', text: `${t('status.plan')}: ` }), h('span', { text: plan })]));
  }
  return out;
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
  const cd = {
    deadline: 0,
    el: null,
    reason: '',
    tick() {
      if (!this.el) return;
      const left = Math.max(0, Math.round((this.deadline - Date.now()) / 1000));
      const text = left > 0 ? t('status.startsIn', { d: countdown(left) }) : t('status.startsNow');
      this.el.textContent = this.reason ? `${text} — ${t('status.reason', { r: this.reason })}` : text;
      this.el.dataset.seconds = String(left);
    },
  };
  const ticker = setInterval(() => cd.tick(), 1000);

  function draw(st) {
    const c = classify(st);
    const sd = shutdownState(st);
    const badge = h('div', { class: `badge badge-${c.kind}`, id: 'status-badge', 'data-status': st.status || '' }, [
      h('span', { class: 'badge-tokens', text: c.tokens.join(' ') || '?' }),
      h('span', { class: 'badge-text', text: t(c.key) }),
    ]);
    const words = statusText(st.status_text) || statusTokens(st.status);
    cd.el = null;
    const info = h('div', { class: 'hero-info' }, [
      h('p', { class: 'hero-model', id: 'status-model', text: st.model || '—' }),
      words ? h('p', { class: 'hero-text', id: 'status-words', text: words }) : null,
      ...shutdownLines(st, sd, cd),
    ]);
    badgeBox.replaceChildren(badge, info);
    // The top bar's badge follows every /status answer (app.js).

    tiles.replaceChildren(
      meter(t('status.charge'), st.charge_pct, 100, '%'),
      tile(t('status.runtime'), duration(st.runtime_s)),
      meter(t('status.load'), st.load_pct, 100, '%'),
      tile(t('status.inputV'), withUnit(st.input_voltage, 'V', 1), t('status.freq', { f: num(st.frequency_hz, 1) })),
      tile(t('status.outputV'), withUnit(st.output_voltage, 'V', 1)),
      tile(t('status.batteryV'), withUnit(st.battery_voltage, 'V', 2)),
      tile(t('status.temperature'), withUnit(st.temperature_c, '°C', 1)),
    );

    const phase = [phaseText(sd.phase), reasonText(sd.reason)].filter(Boolean).join(' — ');
    details.replaceChildren(
      h('h2', { id: 'details-h', text: t('status.details') }),
      dl([
        [t('status.model'), st.model || '—', { id: 'detail-model' }],
        [t('status.serial'), st.serial || '—'],
        [t('status.firmware'), st.firmware || '—'],
        [t('status.comm'), commText(st.comm), { id: 'detail-comm' }],
        [t('status.statusCode'), st.status ? `${st.status} (${statusTokens(st.status)})` : '—', { id: 'detail-status' }],
        [t('status.lastTransfer'), transferText(st.last_transfer)],
        [t('status.selfTest'), selfTestText(st.self_test), { id: 'detail-selftest' }],
        [t('status.transferHigh'), withUnit(st.transfer_high_v, 'V')],
        [t('status.transferLow'), withUnit(st.transfer_low_v, 'V')],
        sd.structured ? [t('cfg.policy'), policyText(sd.policy), { id: 'detail-policy' }] : null,
        [t('status.shutdownPhase'), phase || '—', { id: 'detail-phase' }],
        sd.structured && sd.completed_at ? [t('status.completed'), timeEl(sd.completed_at)] : null,
        [t('status.age'), st.status_age_ms === undefined || st.status_age_ms === null ? '—' : t('status.ageMs', { ms: num(st.status_age_ms) })],
      ].filter(Boolean)),
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
    clearInterval(ticker);
  };
}
