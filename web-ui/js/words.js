// The UPS's and the service's values in the UI language: status tokens and words, link state,
// self-test results, transfer causes, shutdown phases, reasons and policies, event titles, UPS
// setting codes, and the shutdown plan sentence composed from the structured fields of
// GET /status → shutdown. Unknown values come back as they are (never hidden).
import { t, tOr, has, getLang } from './i18n.js';
import { duration, secs } from './ui.js';

const joinList = (parts) => parts.filter(Boolean).join(t('list.sep'));

/** NUT-style tokens ("OL", "OB LB") → "On line" / "On battery, Low battery". */
export function statusTokens(status) {
  const toks = String(status || '').trim().split(/\s+/).filter(Boolean);
  return joinList(toks.map((x) => tOr(`tok.${x.toUpperCase()}`, x)));
}

// apcupsd STATUS words (host/src/status.rs status_words) → the token they stand for.
const APC_WORDS = {
  ONLINE: 'OL', ONBATT: 'OB', LOWBATT: 'LB', REPLACEBATT: 'RB', OVERLOAD: 'OVER',
  CAL: 'CAL', TRIM: 'TRIM', BOOST: 'BOOST', OFF: 'OFF', COMMLOST: 'COMMLOST',
};

/** apcupsd-like status_text ("ONLINE", "ONBATT LOWBATT", "COMMLOST") → readable words. */
export function statusText(text) {
  const raw = String(text || '').trim();
  if (!raw) return '';
  // The mock and older builds send prose ("On line"); only translate the known words.
  const words = raw.split(/\s+/);
  if (!words.every((w) => Object.hasOwn(APC_WORDS, w.toUpperCase()))) return raw;
  return joinList(words.map((w) => t(`tok.${APC_WORDS[w.toUpperCase()]}`)));
}

/** Link state: connecting, online, lost, closed (or a boolean from old builds). */
export function commText(comm) {
  if (typeof comm === 'boolean') return comm ? t('comm.online') : t('comm.lost');
  if (comm === null || comm === undefined || comm === '') return '—';
  return tOr(`comm.${String(comm).toLowerCase()}`, String(comm));
}

/** Self-test result ("OK", "BT (failed: battery capacity)", …) → "Passed (OK)". */
export function selfTestText(v) {
  if (v === null || v === undefined || v === '') return '—';
  const code = String(v).trim().split(/[\s(]/)[0].toUpperCase();
  if (!has(`selftest.${code}`)) return String(v);
  return t('fmt.valueCode', { label: t(`selftest.${code}`), code });
}

// The server's English transfer causes (host/src/status.rs transfer_text), lower-cased.
const TRANSFER = [
  [/rate of change/, 'xfer.rate'],
  [/high line/, 'xfer.high'],
  [/low line/, 'xfer.low'],
  [/notch|spike/, 'xfer.notch'],
  [/^no transfers? since/, 'xfer.none'],
  [/self[ -]?test/, 'xfer.selftest'],
  [/software/, 'xfer.software'],
  [/not available/, 'xfer.na'],
];

export function transferText(v) {
  if (v === null || v === undefined || v === '') return '—';
  const low = String(v).toLowerCase();
  const hit = TRANSFER.find(([re]) => re.test(low));
  return hit ? t(hit[1]) : String(v);
}

const REASON_ALIAS = { time_on_battery_exceeded: 'time_on_battery', temperature_exceeded: 'temperature' };

function snake(x) {
  return String(x).replace(/([a-z0-9])([A-Z])/g, '$1_$2').replace(/[\s-]+/g, '_').toLowerCase();
}

export function reasonText(r) {
  if (r === null || r === undefined || r === '') return '';
  const k = snake(r);
  const key = REASON_ALIAS[k] || k;
  return tOr(`reason.${key}`, String(r));
}

export function policyText(p) {
  return p ? tOr(`enum.${p}`, String(p)) : '—';
}

export function phaseText(p) {
  return p ? tOr(`phase.${p}`, String(p)) : '—';
}

/**
 * The shutdown state as {phase, reason, …}: the status's `shutdown` object, or — from a
 * server without it — parsed from the older `shutdown_phase` string ("idle", "pending
 * (OnBattery)", "command file running (LowBattery)", "OS shutdown started (…)").
 */
export function shutdownState(st) {
  if (st && st.shutdown && typeof st.shutdown === 'object' && typeof st.shutdown.phase === 'string') {
    return { ...st.shutdown, structured: true };
  }
  const raw = String((st && st.shutdown_phase) || '').trim();
  const m = /\(([^)]*)\)/.exec(raw);
  const reason = m ? snake(m[1]) : null;
  const low = raw.toLowerCase();
  let phase = 'idle';
  if (low.startsWith('pending')) phase = 'pending';
  else if (low.startsWith('command')) phase = 'command_file';
  else if (low.startsWith('os')) phase = 'os_shutdown';
  else if (low.startsWith('complete')) phase = 'completed';
  else if (raw && low !== 'idle' && low !== 'none') phase = raw;
  return { phase, reason: reason ? REASON_ALIAS[reason] || reason : null, structured: false };
}

/** True while the sequence is really running (command file or OS shutdown). */
export function inProgress(phase) {
  return phase === 'command_file' || phase === 'os_shutdown';
}

/**
 * The plan sentence in the UI language, from the structured fields. Falls back to the
 * server's English `plan` (or '') when the policy is one the UI does not know.
 */
export function planSentence(sd) {
  if (!sd || typeof sd !== 'object') return '';
  const n = (v) => (v === null || v === undefined || v === '' || !Number.isFinite(Number(v)) ? null : Number(v));
  const lr = n(sd.low_runtime_s);
  const parts = t('plan.parts', { os: secs(n(sd.os_shutdown_s) ?? 0), cmd: secs(n(sd.command_file_s) ?? 0), m: secs(n(sd.margin_s) ?? 0) });
  let trigger;
  switch (sd.policy) {
    case 'immediately':
      trigger = t('plan.immediately');
      break;
    case 'on_battery_delay':
      trigger = t('plan.on_battery_delay', { d: duration(n(sd.on_battery_delay_s) ?? 0) });
      break;
    case 'low_battery':
      // The low-battery runtime only adds something when it is above the low-runtime limit
      // (below it, Low Runtime has fired first anyway).
      trigger = n(sd.low_battery_runtime_s) > 0 && (lr === null || n(sd.low_battery_runtime_s) > lr)
        ? t('plan.low_battery_rt', { r: duration(n(sd.low_battery_runtime_s)) })
        : t('plan.low_battery');
      break;
    case 'threshold':
      trigger = t('plan.threshold', { c: n(sd.threshold_charge_pct) ?? 0, r: duration(n(sd.threshold_runtime_s) ?? 0) });
      break;
    case 'low_runtime':
      if (lr === null) return typeof sd.plan === 'string' ? sd.plan : '';
      return t('plan.low_runtime', { lr: duration(lr), parts });
    default:
      return typeof sd.plan === 'string' ? sd.plan : '';
  }
  if (lr === null) return `${trigger}${getLang() === 'ja' ? '。' : '.'}`;
  return t('plan.withLowRuntime', { trigger, lr: duration(lr), parts });
}

/** Title of an event row from its stable id (and cleared state); null when unknown. */
export function eventTitle(e) {
  const id = String((e && e.id) || '');
  if (!id) return null;
  if (e.state === 'cleared' && has(`evc.${id}`)) return t(`evc.${id}`);
  return has(`ev.${id}`) ? t(`ev.${id}`) : null;
}

/** "336 — every 14 days" for a UPS setting code the UI knows, else the code. */
export function upsValueText(name, code) {
  const c = String(code ?? '').trim();
  if (c === '') return '—';
  const key = `upsVal.${name}.${c.toUpperCase()}`;
  return has(key) ? t('fmt.codeLabel', { code: c, label: t(key) }) : c;
}
