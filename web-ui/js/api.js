// The one place that knows the JSON API's paths and rules (/api/v1, same-origin cookie
// session, X-CSRF-Token on every state change). Pages call these functions only.

const BASE = '/api/v1';

let csrf = '';
let onUnauthorized = () => {};
let onError = () => {};

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body || {};
  }
}

/** What to do when the session is gone (401) and how to show an error to the user. */
export function configure({ unauthorized, error }) {
  if (unauthorized) onUnauthorized = unauthorized;
  if (error) onError = error;
}

export function setCsrf(token) {
  csrf = typeof token === 'string' ? token : '';
}

export function hasSession() {
  return csrf !== '';
}

/** URL of a download (CSV export); the browser sends the session cookie with it. */
export function downloadUrl(path) {
  return BASE + path;
}

// Paths where a 401 is an answer the page handles, not "session expired".
const AUTH_PATHS = new Set(['/login', '/setup', '/session']);

async function request(method, path, body, { quiet = false, background = false } = {}) {
  const headers = { Accept: 'application/json' };
  // Automatic refreshes are not activity: the server's idle timeout must still end the session
  // of a browser left open on the dashboard.
  if (background) headers['X-Upsguard-Background'] = '1';
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store', redirect: 'error' };
  if (method !== 'GET' && method !== 'HEAD') {
    if (csrf) headers['X-CSRF-Token'] = csrf;
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
  }
  let resp;
  try {
    resp = await fetch(BASE + path, init);
  } catch (e) {
    const err = new ApiError(0, 'network', {});
    if (!quiet) onError(err);
    throw err;
  }
  let data = null;
  const type = resp.headers.get('Content-Type') || '';
  if (type.includes('json')) {
    try {
      data = await resp.json();
    } catch {
      data = null;
    }
  }
  if (resp.ok) return data ?? {};
  const message = (data && typeof data.error === 'string' && data.error) || `HTTP ${resp.status}`;
  const err = new ApiError(resp.status, message, data);
  if (resp.status === 401 && !AUTH_PATHS.has(path.split('?')[0])) {
    setCsrf('');
    onUnauthorized(err);
    throw err;
  }
  if (!quiet) onError(err);
  throw err;
}

const q = (v) => encodeURIComponent(String(v));

// --- authentication -------------------------------------------------------------------
export const setupNeeded = () => request('GET', '/setup', undefined, { quiet: true });
export const setup = (token, username, password) =>
  request('POST', '/setup', { token, username, password }, { quiet: true });
export async function login(username, password, takeover = false) {
  const body = { username, password };
  if (takeover) body.takeover = true;
  const r = await request('POST', '/login', body, { quiet: true });
  setCsrf(r.csrf);
  return r;
}
export async function logout() {
  try {
    await request('POST', '/logout', {}, { quiet: true });
  } finally {
    setCsrf('');
  }
}
export async function session() {
  const r = await request('GET', '/session', undefined, { quiet: true });
  setCsrf(r.csrf);
  return r;
}

// --- monitoring -----------------------------------------------------------------------
/** `background`: an automatic refresh, which does not extend the session's idle time. */
const statusListeners = [];
let lastStatusAt = 0;
/** Called with every /status answer, whichever page asked (the shell's problems banner). */
export function onStatus(fn) {
  statusListeners.push(fn);
}
/** ms since the last /status answer (Infinity before the first). */
export const statusAge = () => (lastStatusAt ? Date.now() - lastStatusAt : Infinity);
export async function status(background = false) {
  const st = await request('GET', '/status', undefined, { quiet: true, background });
  lastStatusAt = Date.now();
  for (const fn of statusListeners) {
    try {
      fn(st);
    } catch {
      /* a listener must not break the page that asked */
    }
  }
  return st;
}
/** The OpenAPI document (its info.version is the program's version). */
export const openapi = () => request('GET', '/openapi.json', undefined, { quiet: true });
export const events = (limit = 500) => request('GET', `/events?limit=${q(limit)}`);
export const eventsCsvUrl = () => downloadUrl('/events.csv');
/** `{samples: [{ts, input_v, …}]}`; the server sends the CSV as `{columns, rows}`. */
export async function datalog(limit = 1440) {
  const r = await request('GET', `/datalog?limit=${q(limit)}`);
  if (Array.isArray(r.samples)) return r;
  const cols = Array.isArray(r.columns) ? r.columns : [];
  const rows = Array.isArray(r.rows) ? r.rows : [];
  const samples = rows.map((row) => {
    const o = {};
    cols.forEach((c, i) => {
      const v = row[i];
      if (c === 'ts') o.ts = v;
      else o[c] = v === undefined || v === null || v === '' || Number.isNaN(Number(v)) ? null : Number(v);
    });
    return o;
  });
  return { samples };
}
export const datalogCsvUrl = () => downloadUrl('/datalog.csv');

// --- UPS ------------------------------------------------------------------------------
/** `[{name, value, permitted}]` (the server wraps it as `{settings: […]}`). */
export async function upsSettings() {
  const r = await request('GET', '/ups/settings');
  return Array.isArray(r) ? r : Array.isArray(r.settings) ? r.settings : [];
}
export const setUpsSetting = (name, value) => request('PUT', '/ups/settings', { name, value: String(value) });
export const selfTest = () => request('POST', '/ups/selftest', {});
export const calibrate = (abort) => request('POST', '/ups/calibrate', { abort: Boolean(abort) });
export const shutdownNow = () => request('POST', '/shutdown/now', {});
export const sleep = (hours, graceful) => request('POST', '/ups/sleep', { hours, graceful });

// --- configuration (sections of upsguard.ini) -----------------------------------------
export const SECTIONS = ['Shutdown', 'Events', 'Schedule', 'Logging', 'Web', 'SNMP', 'NUT', 'NIS'];
/** `{key: value}` of one section (the server answers `{section, values}`). */
export async function config(section) {
  const r = await request('GET', `/config/${q(section)}`);
  return r && typeof r.values === 'object' && r.values !== null && !Array.isArray(r.values) ? r.values : r;
}
export const setConfig = (section, values) => request('PUT', `/config/${q(section)}`, values);

// --- notifications ----------------------------------------------------------------------
/** `{set: bool}`: whether an SMTP password is stored (it is never returned). */
export const smtpPasswordState = () => request('GET', '/notifications/smtp-password', undefined, { quiet: true });
/** Write-only; `''` removes it. */
export const setSmtpPassword = (password) => request('PUT', '/notifications/smtp-password', { password }, { quiet: true });
/** `{results: [{channel, ok, detail, attempts}]}` for every enabled channel. */
export const testNotifications = () => request('POST', '/notifications/test', {}, { quiet: true });

// --- security -------------------------------------------------------------------------
/** The served certificate: subject, issuer, sans, not_before/after, key_type, key_bits, … */
export const certificate = () => request('GET', '/security/certificate', undefined, { quiet: true });
/** Serve the files in <data-dir>/tls/ again (after `upsguard cert import|generate`). */
export const reloadCertificate = () => request('POST', '/security/certificate/reload', {});
export const changePassword = (current_password, new_password) =>
  request('PUT', '/security/password', { current_password, new_password }, { quiet: true });
