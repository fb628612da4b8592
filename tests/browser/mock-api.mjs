// A stand-in for the upsguard HTTPS service: serves ../../web-ui with the real CSP and
// implements the /api/v1 contract in memory. For developing and checking the UI while the
// real routes are being written (`node ui-test.mjs --mock`); not a substitute for the real test.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../web-ui');
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";
const TYPES = { html: 'text/html; charset=utf-8', css: 'text/css; charset=utf-8', js: 'text/javascript; charset=utf-8', svg: 'image/svg+xml' };

export const MOCK_VERSION = '0.1.0-mock';

// What the test (or MOCK_SCENARIO / MOCK_PROBLEMS for a standalone run) can switch:
//   state.scenario: 'normal' | 'outage' (on battery, countdown) | 'running' (OS shutdown in
//                   progress) | 'completed' (last sequence finished, mains back)
//   state.problems: [{kind, key, message}] as GET /status → problems reports them
//   state.legacy:   true = answer like an older server (no `shutdown` object)
const SAMPLE_PROBLEMS = [
  { kind: 'event_log', key: 'events.jsonl', message: 'cannot write the event log: No space left on device (os error 28)' },
  { kind: 'not_implemented', key: 'NUT.enabled', message: 'NUT.enabled = true, but the NUT server is not implemented in this version; nothing listens on port 3493' },
];

/** The server's English plan sentence (GET /status → shutdown.plan), roughly as it words it. */
function englishPlan(sd) {
  const m = (s) => (s % 60 === 0 && s >= 60 ? `${s / 60} min` : `${s} s`);
  const tail = `runtime falls below ${m(sd.low_runtime_s)} (OS shutdown ${sd.os_shutdown_s} s + command file ${sd.command_file_s} s + safety margin ${sd.margin_s} s)`;
  const first = {
    immediately: 'Shutdown starts as soon as the UPS is on battery',
    on_battery_delay: `Shutdown starts after ${m(sd.on_battery_delay_s)} on battery`,
    low_battery: 'Shutdown starts when the UPS reports low battery',
    threshold: `Shutdown starts when the charge falls to ${sd.threshold_charge_pct} % or the runtime to ${m(sd.threshold_runtime_s)}`,
  }[sd.policy];
  return first ? `${first}, or at the latest when ${tail}.` : `Shutdown starts when ${tail}.`;
}

export function startMock({ port = 0, token = 'deadbeef-00112233-44556677-8899aabb-ccddeeff' } = {}) {
  const st = {
    scenario: process.env.MOCK_SCENARIO || 'normal',
    scenarioSince: Date.now(),
    problems: process.env.MOCK_PROBLEMS ? SAMPLE_PROBLEMS.slice() : [],
    admin: null,
    session: null,
    fails: 0,
    lockedUntil: 0,
    events: [],
    config: {
      Shutdown: { policy: 'low_battery', on_battery_delay_s: '300', low_battery_runtime_s: '120', threshold_charge_pct: '5', threshold_runtime_min: '3', command_file: '', command_file_duration_s: '0', os_shutdown_command: '/sbin/shutdown -h +0', os_shutdown_duration_s: '120', turn_off_ups: 'true', ups_off_mode: 'return', sleep_hours: '1', comm_lost_on_battery_shutdown: 'true', comm_lost_on_battery_delay_s: '60' },
      Events: { comm_lost: 'log', on_battery: 'log, notify', low_battery: 'log, shutdown', mains_returned: 'log', self_test_failed: 'log, notify', login: 'log', login_failed: 'log' },
      Schedule: { weekend: 'weekly sat 23:00 wake sun 07:00' },
      Logging: { event_log_max_kb: '1024', event_log_files: '5', datalog_interval_s: '60', datalog_max_kb: '4096', datalog_files: '5' },
      Web: { bind: '127.0.0.1', port: '6547', idle_timeout_min: '15' },
      SNMP: { enabled: 'false', bind: '127.0.0.1', port: '161', communities: '', managers: '', trap_receivers: '', trap_port: '162' },
      NUT: { enabled: 'true', bind: '127.0.0.1', port: '3493' },
      NIS: { enabled: 'false', bind: '127.0.0.1', port: '3551' },
      Notifications: { email_enabled: 'false', smtp_host: '', smtp_port: '587', smtp_security: 'starttls', smtp_username: '', smtp_pin_sha256: '', mail_from: '', mail_to: '', webhook_enabled: 'false', webhook_url: '', webhook_pin_sha256: '' },
    },
    smtpPassword: false,
    ups: [
      { name: 'transfer_high', value: '253', permitted: ['253', '264', '271', '280'] },
      { name: 'transfer_low', value: '196', permitted: ['196', '188', '208', '204'] },
      { name: 'sensitivity', value: 'H', permitted: ['H', 'M', 'L'] },
      { name: 'alarm_delay', value: '0', permitted: ['0', 'T', 'L', 'N'] },
      { name: 'self_test_interval', value: '336', permitted: ['336', '168', 'ON', 'OFF'] },
    ],
  };
  const ev = (id, severity, message, state = 'none', fields = {}, source = '', ago = 0) => st.events.push({ ts: new Date(Date.now() - ago * 1000).toISOString(), id, severity, state, message, fields, ...(source ? { source } : {}) });
  // A history like the real service's (English messages; titles come from the ids).
  const H = 3600;
  ev('monitoring_started', 'info', 'Monitoring Started', 'none', {}, '', 30 * H);
  ev('comm_established', 'info', 'Communication Established', 'none', { model: 'SMART-UPS 1000' }, '', 30 * H - 5);
  ev('self_test_passed', 'info', 'Self-Test Passed', 'none', { status: 'OL' }, '', 26 * H);
  ev('on_battery', 'warning', 'On Battery', 'active', { status: 'OB', charge: 100, runtime_s: 2760 }, '', 20 * H);
  ev('low_battery', 'critical', 'Low Battery', 'active', { status: 'OB LB', charge: 21, runtime_s: 170 }, '', 20 * H - 1500);
  ev('shutdown_started', 'info', 'Graceful Shutdown Started', 'none', { reason: 'low_battery' }, '', 20 * H - 1499);
  ev('command_file', 'info', 'command file notify-admins.sh for shutdown_started exited with 0 after 2.1 s; output: mail sent to ops@example.org, pager notified, ticket INC-20261127-0042 opened', 'none', { name: 'notify-admins.sh', event: 'shutdown_started' }, '', 20 * H - 1497);
  ev('power_restored', 'info', 'Input Power Restored', 'none', { status: 'OL' }, '', 20 * H - 1400);
  ev('low_battery', 'info', 'Low Battery Cleared', 'cleared', { status: 'OL' }, '', 20 * H - 1390);
  ev('notification_failed', 'warning', 'webhook notification for on_battery failed after 3 attempt(s): connection refused (os error 111) while connecting to https://hooks.example.org/upsguard/aVeryLongWebhookPathThatDoesNotBreakNicely', 'none', { channel: 'webhook', event: 'on_battery' }, '', 20 * H - 1300);
  ev('comm_lost', 'warning', 'Communication Lost', 'none', {}, '', 3 * H);
  ev('comm_established', 'info', 'Communication Established', 'none', {}, '', 3 * H - 12);
  ev('mock_only_event', 'info', 'An event id the UI does not know', 'none', {}, '', 2 * H);

  /** GET /status → shutdown, from [Shutdown] and the scenario. */
  function shutdownView() {
    const c = st.config.Shutdown;
    const n = (k) => Number(c[k]) || 0;
    const sd = {
      phase: 'idle', reason: null, policy: c.policy,
      on_battery_delay_s: n('on_battery_delay_s'), threshold_charge_pct: n('threshold_charge_pct'),
      threshold_runtime_s: n('threshold_runtime_min') * 60, low_battery_runtime_s: n('low_battery_runtime_s'),
      command_file_s: n('command_file_duration_s'), os_shutdown_s: n('os_shutdown_duration_s'), margin_s: 60,
      low_runtime_s: n('command_file_duration_s') + n('os_shutdown_duration_s') + 60,
      plan: '', starts_in_s: null, since: null, completed_at: null,
    };
    sd.plan = englishPlan(sd);
    const elapsed = Math.floor((Date.now() - st.scenarioSince) / 1000);
    if (st.scenario === 'outage') {
      if (sd.policy === 'on_battery_delay' || sd.policy === 'immediately') {
        sd.phase = 'pending';
        sd.reason = 'on_battery';
        sd.since = new Date(st.scenarioSince).toISOString();
        sd.starts_in_s = Math.max(0, (sd.policy === 'immediately' ? 0 : sd.on_battery_delay_s) - elapsed);
      } else {
        // Estimated: until the runtime (1500 s, falling 1 s per s) reaches the low-runtime limit.
        sd.starts_in_s = Math.max(0, 1500 - elapsed - sd.low_runtime_s);
      }
    } else if (st.scenario === 'running') {
      sd.phase = 'os_shutdown';
      sd.reason = 'low_runtime';
      sd.starts_in_s = 0;
      sd.since = new Date(st.scenarioSince - 30000).toISOString();
    } else if (st.scenario === 'completed') {
      sd.phase = 'completed';
      sd.reason = 'low_battery';
      sd.since = new Date(st.scenarioSince - 20 * 60000).toISOString();
      sd.completed_at = new Date(st.scenarioSince - 17 * 60000).toISOString();
    }
    return sd;
  }
  const PHASE_TEXT = { idle: 'idle', pending: 'pending (OnBattery)', command_file: 'command file running (LowBattery)', os_shutdown: 'OS shutdown started (LowRuntime)', completed: 'idle' };

  function json(res, code, body, headers = {}) {
    res.writeHead(code, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store', ...headers });
    res.end(JSON.stringify(body));
  }
  const cookieSid = (req) => /(?:^|;\s*)sid=([^;]+)/.exec(req.headers.cookie || '')?.[1];
  const authed = (req) => st.session && cookieSid(req) === st.session.sid;

  const server = http.createServer(async (req, res) => {
    res.setHeader('Content-Security-Policy', CSP);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    const url = new URL(req.url, 'http://x');
    let body = {};
    if (req.method !== 'GET') {
      const chunks = [];
      for await (const c of req) chunks.push(c);
      try { body = JSON.parse(Buffer.concat(chunks).toString() || '{}'); } catch { return json(res, 400, { error: 'bad JSON' }); }
      if (!['/api/v1/login', '/api/v1/setup'].includes(url.pathname) && authed(req) && req.headers['x-csrf-token'] !== st.session.csrf) {
        return json(res, 403, { error: 'CSRF token missing or wrong' });
      }
    }
    const p = url.pathname;
    if (!p.startsWith('/api/v1/')) {
      const name = p === '/' ? 'index.html' : p.slice(1);
      const file = path.join(ROOT, name);
      if (!file.startsWith(ROOT) || !fs.existsSync(file) || fs.statSync(file).isDirectory()) { res.writeHead(404); return res.end('not found'); }
      res.writeHead(200, { 'Content-Type': TYPES[path.extname(file).slice(1)] || 'application/octet-stream', 'Cache-Control': 'no-cache' });
      return res.end(fs.readFileSync(file));
    }
    const r = p.slice('/api/v1'.length);
    if (r === '/openapi.json') return json(res, 200, { openapi: '3.0.3', info: { title: 'upsguard API', version: MOCK_VERSION }, paths: {} });
    if (r === '/setup' && req.method === 'GET') return json(res, 200, { needed: !st.admin });
    if (r === '/setup' && req.method === 'POST') {
      if (st.admin) return json(res, 409, { error: 'already set up' });
      if (body.token !== token) return json(res, 403, { error: 'setup token is wrong or expired' });
      if (!body.username || body.username.length < 6) return json(res, 400, { error: 'username: 6 to 128 characters' });
      st.admin = { username: body.username, password: body.password };
      ev('credentials_changed', 'info', 'administrator created', 'none', {}, '127.0.0.1');
      return json(res, 200, {});
    }
    if (r === '/login' && req.method === 'POST') {
      if (Date.now() < st.lockedUntil) return json(res, 423, { error: 'locked', retry_after_s: Math.ceil((st.lockedUntil - Date.now()) / 1000) });
      if (!st.admin || body.username !== st.admin.username || body.password !== st.admin.password) {
        st.fails += 1;
        ev('login_failed', 'warning', `failed login for user ${JSON.stringify(String(body.username || ''))}`, 'none', {}, '127.0.0.1');
        if (st.fails >= 3) { st.lockedUntil = Date.now() + 120000; st.fails = 0; return json(res, 423, { error: 'locked', retry_after_s: 120 }); }
        return json(res, 401, { error: 'wrong user name or password' });
      }
      if (st.session && !body.takeover && cookieSid(req) !== st.session.sid) return json(res, 409, { error: 'another session is active' });
      st.fails = 0;
      st.session = { sid: crypto.randomBytes(16).toString('hex'), csrf: crypto.randomBytes(16).toString('hex') };
      ev('login', 'info', `administrator logged in${body.takeover ? ' (took over)' : ''}`, 'none', {}, '127.0.0.1');
      return json(res, 200, { csrf: st.session.csrf }, { 'Set-Cookie': `sid=${st.session.sid}; HttpOnly; SameSite=Strict; Path=/` });
    }
    if (!authed(req)) return json(res, 401, { error: 'not logged in' });
    if (r === '/logout') { st.session = null; ev('logout', 'info', 'administrator logged out', 'none', {}, '127.0.0.1'); return json(res, 200, {}, { 'Set-Cookie': 'sid=; Max-Age=0; Path=/' }); }
    if (r === '/session') return json(res, 200, { username: st.admin.username, csrf: st.session.csrf, idle_timeout_s: Number(process.env.MOCK_IDLE_S || 900) });
    if (r === '/status') {
      const j = (x, d) => Math.round((x + (Math.random() - 0.5) * d) * 10) / 10;
      const sd = shutdownView();
      const ob = st.scenario === 'outage' || st.scenario === 'running';
      const elapsed = Math.floor((Date.now() - st.scenarioSince) / 1000);
      return json(res, 200, {
        version: MOCK_VERSION, comm: 'online', status: ob ? 'OB' : 'OL', status_text: ob ? 'ONBATT' : 'ONLINE',
        model: 'SMART-UPS 1000', serial: 'AS0123456789', firmware: '600.3.I',
        input_voltage: ob ? 0 : j(230, 2), output_voltage: j(230, 1), frequency_hz: 50, load_pct: j(23, 2),
        charge_pct: ob ? 87 : 100, battery_voltage: ob ? 25.9 : 27.4, runtime_s: ob ? Math.max(0, 1500 - elapsed) : 2760, temperature_c: 31.5,
        last_transfer: ob ? 'Low line voltage' : 'No transfers since turnon', self_test: 'OK', transfer_high_v: 253, transfer_low_v: 196,
        shutdown_phase: PHASE_TEXT[sd.phase] || 'idle', ...(st.legacy ? {} : { shutdown: sd }), problems: st.problems, status_age_ms: 420,
      });
    }
    if (r === '/events') return json(res, 200, { events: st.events.slice(-Number(url.searchParams.get('limit') || 100)), skipped: 0 });
    if (r === '/datalog') {
      const n = Math.min(Number(url.searchParams.get('limit') || 100), 1440);
      const now = Date.now();
      const samples = Array.from({ length: n }, (_, i) => {
        const k = n - i;
        const ob = k > 200 && k < 230;
        return { ts: new Date(now - k * 60000).toISOString(), input_v: ob ? 0 : 229 + Math.sin(i / 9) * 3, output_v: 230, freq_hz: 50, load_pct: 22 + Math.sin(i / 25) * 6, charge_pct: ob ? 100 - (k < 215 ? 15 : (230 - k)) : 100, battery_v: ob ? 25.9 : 27.4, runtime_s: ob ? 1900 : 2760, temp_c: 31 + Math.sin(i / 60) };
      });
      // Same shape as the real server: the data-log CSV as {columns, rows} of strings.
      const columns = ['ts', 'input_v', 'output_v', 'freq_hz', 'load_pct', 'charge_pct', 'battery_v', 'runtime_s', 'temp_c'];
      return json(res, 200, { columns, rows: samples.map((x) => columns.map((c) => (c === 'ts' ? x.ts : Number(x[c]).toFixed(1)))) });
    }
    if (r === '/events.csv' || r === '/datalog.csv') { res.writeHead(200, { 'Content-Type': 'text/csv' }); return res.end('ts,x\n'); }
    if (r === '/ups/settings' && req.method === 'GET') return json(res, 200, { settings: st.ups });
    if (r === '/ups/settings' && req.method === 'PUT') {
      const s = st.ups.find((x) => x.name === body.name);
      if (!s || !s.permitted.includes(body.value)) return json(res, 400, { error: 'value not permitted' });
      s.value = body.value;
      ev('configuration_changed', 'info', `UPS setting ${body.name} set to ${body.value} from the web UI`, 'none', {}, '127.0.0.1');
      return json(res, 200, {});
    }
    if (r === '/ups/selftest') { ev('self_test_started', 'info', 'self-test started from the web UI', 'none', {}, '127.0.0.1'); return json(res, 200, {}); }
    if (r === '/ups/calibrate') { ev('calibration_started', 'info', 'Runtime Calibration Started'); return json(res, 200, {}); }
    if (r === '/shutdown/now' || r === '/ups/sleep') return json(res, 200, {});
    if (r === '/security/certificate' || r === '/security/certificate/reload') {
      return json(res, 200, { subject: 'CN=upsguard', issuer: 'CN=upsguard', sans: ['DNS:localhost', 'IP:127.0.0.1', 'IP:::1'], not_before: '2026-11-27T00:00:00Z', not_after: '2036-11-25T00:00:00Z', key_type: 'RSA', key_bits: 2048, signature_algorithm: 'sha512WithRSAEncryption', sha256_fingerprint: 'AB:CD:EF', self_signed: true, chain_len: 1, days_until_expiry: 3650 });
    }
    if (r === '/security/password') return json(res, 200, { ok: true });
    if (r === '/notifications/smtp-password' && req.method === 'GET') return json(res, 200, { set: st.smtpPassword });
    if (r === '/notifications/smtp-password') { st.smtpPassword = Boolean(body.password); return json(res, 200, { set: st.smtpPassword }); }
    if (r === '/notifications/test') {
      const c = st.config.Notifications;
      const results = [];
      if (c.email_enabled === 'true') results.push({ channel: 'email', ok: false, detail: `cannot connect to ${c.smtp_host}:${c.smtp_port}`, attempts: 1 });
      if (c.webhook_enabled === 'true') results.push({ channel: 'webhook', ok: false, detail: 'connection refused (os error 111)', attempts: 1 });
      return json(res, 200, { results });
    }
    const m = /^\/config\/([A-Za-z]+)$/.exec(r);
    if (m && st.config[m[1]]) {
      if (req.method === 'GET') return json(res, 200, { section: m[1], values: st.config[m[1]] });
      // Like the server: typed values, all or nothing, and the refused key named.
      if (m[1] === 'Shutdown' && typeof body.command_file === 'string' && /[/\\]|^\.\.?$/.test(body.command_file)) {
        return json(res, 400, { error: 'Shutdown.command_file: must be a file name in the command-file folder, not a path', key: 'command_file' });
      }
      for (const [k, v] of Object.entries(body)) {
        if (m[1] === 'Schedule' && v === '') delete st.config.Schedule[k];
        else st.config[m[1]][k] = v;
      }
      ev('configuration_changed', 'info', `configuration [${m[1]}] changed from the web UI: ${Object.keys(body).join(', ')}`, 'none', {}, '127.0.0.1');
      return json(res, 200, {});
    }
    return json(res, 404, { error: 'no such route' });
  });
  /** Switch the scenario (restarts its clock). */
  const scenario = (name) => {
    st.scenario = name;
    st.scenarioSince = Date.now();
  };
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve({ server, port: server.address().port, token, state: st, scenario, sampleProblems: SAMPLE_PROBLEMS })));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { port, token } = await startMock({ port: Number(process.argv[2] || 8080) });
  console.log(`mock upsguard on http://127.0.0.1:${port}/  setup token ${token}`);
}
