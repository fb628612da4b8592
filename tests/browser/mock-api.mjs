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

export function startMock({ port = 0, token = 'deadbeef-00112233-44556677-8899aabb-ccddeeff' } = {}) {
  const st = {
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
    },
    ups: [
      { name: 'transfer_high', value: '253', permitted: ['253', '264', '271', '280'] },
      { name: 'transfer_low', value: '196', permitted: ['196', '188', '208', '204'] },
      { name: 'sensitivity', value: 'H', permitted: ['H', 'M', 'L'] },
      { name: 'alarm_delay', value: '0', permitted: ['0', 'T', 'L', 'N'] },
      { name: 'self_test_interval', value: '336', permitted: ['336', '168', 'ON', 'OFF'] },
    ],
  };
  const ev = (id, severity, message, state = '') => st.events.push({ ts: new Date().toISOString(), id, severity, state, message, fields: {}, source: 'web' });
  ev('service_started', 'info', 'upsguard started');

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
    if (r === '/setup' && req.method === 'GET') return json(res, 200, { needed: !st.admin });
    if (r === '/setup' && req.method === 'POST') {
      if (st.admin) return json(res, 409, { error: 'already set up' });
      if (body.token !== token) return json(res, 403, { error: 'setup token is wrong or expired' });
      if (!body.username || body.username.length < 6) return json(res, 400, { error: 'username: 6 to 128 characters' });
      st.admin = { username: body.username, password: body.password };
      ev('credentials_changed', 'info', 'administrator created');
      return json(res, 200, {});
    }
    if (r === '/login' && req.method === 'POST') {
      if (Date.now() < st.lockedUntil) return json(res, 423, { error: 'locked', retry_after_s: Math.ceil((st.lockedUntil - Date.now()) / 1000) });
      if (!st.admin || body.username !== st.admin.username || body.password !== st.admin.password) {
        st.fails += 1;
        ev('login_failed', 'warning', 'failed login');
        if (st.fails >= 3) { st.lockedUntil = Date.now() + 120000; st.fails = 0; return json(res, 423, { error: 'locked', retry_after_s: 120 }); }
        return json(res, 401, { error: 'wrong user name or password' });
      }
      if (st.session && !body.takeover && cookieSid(req) !== st.session.sid) return json(res, 409, { error: 'another session is active' });
      st.fails = 0;
      st.session = { sid: crypto.randomBytes(16).toString('hex'), csrf: crypto.randomBytes(16).toString('hex') };
      ev('login', 'info', `administrator logged in${body.takeover ? ' (took over)' : ''}`);
      return json(res, 200, { csrf: st.session.csrf }, { 'Set-Cookie': `sid=${st.session.sid}; HttpOnly; SameSite=Strict; Path=/` });
    }
    if (!authed(req)) return json(res, 401, { error: 'not logged in' });
    if (r === '/logout') { st.session = null; ev('logout', 'info', 'administrator logged out'); return json(res, 200, {}, { 'Set-Cookie': 'sid=; Max-Age=0; Path=/' }); }
    if (r === '/session') return json(res, 200, { username: st.admin.username, csrf: st.session.csrf, idle_timeout_s: Number(process.env.MOCK_IDLE_S || 900) });
    if (r === '/status') {
      const j = (x, d) => Math.round((x + (Math.random() - 0.5) * d) * 10) / 10;
      return json(res, 200, { comm: 'online', status: 'OL', status_text: 'On line', model: 'SMART-UPS 1000', serial: 'AS0123456789', firmware: '600.3.I', input_voltage: j(230, 2), output_voltage: j(230, 1), frequency_hz: 50, load_pct: j(23, 2), charge_pct: 100, battery_voltage: 27.4, runtime_s: 2760, temperature_c: 31.5, last_transfer: 'No transfer since turn on', self_test: 'OK', transfer_high_v: 253, transfer_low_v: 196, shutdown_phase: 'idle', status_age_ms: 420 });
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
      ev('ups_setting_changed', 'info', `UPS setting ${body.name} = ${body.value}`);
      return json(res, 200, {});
    }
    if (r === '/ups/selftest') { ev('self_test', 'info', 'self-test started'); return json(res, 200, {}); }
    if (r === '/ups/calibrate') { ev('calibration_started', 'info', 'calibration started'); return json(res, 200, {}); }
    if (r === '/shutdown/now' || r === '/ups/sleep') return json(res, 200, {});
    if (r === '/security/certificate' || r === '/security/certificate/reload') {
      return json(res, 200, { subject: 'CN=upsguard', issuer: 'CN=upsguard', sans: ['DNS:localhost', 'IP:127.0.0.1', 'IP:::1'], not_before: '2026-11-27T00:00:00Z', not_after: '2036-11-25T00:00:00Z', key_type: 'RSA', key_bits: 2048, signature_algorithm: 'sha512WithRSAEncryption', sha256_fingerprint: 'AB:CD:EF', self_signed: true, chain_len: 1, days_until_expiry: 3650 });
    }
    if (r === '/security/password') return json(res, 200, { ok: true });
    const m = /^\/config\/([A-Za-z]+)$/.exec(r);
    if (m && st.config[m[1]]) {
      if (req.method === 'GET') return json(res, 200, { section: m[1], values: st.config[m[1]] });
      for (const [k, v] of Object.entries(body)) {
        if (m[1] === 'Schedule' && v === '') delete st.config.Schedule[k];
        else st.config[m[1]][k] = v;
      }
      ev('config_changed', 'info', `configuration [${m[1]}] changed: ${Object.keys(body).join(', ')}`);
      return json(res, 200, {});
    }
    return json(res, 404, { error: 'no such route' });
  });
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve({ server, port: server.address().port, token })));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { port, token } = await startMock({ port: Number(process.argv[2] || 8080) });
  console.log(`mock upsguard on http://127.0.0.1:${port}/  setup token ${token}`);
}
