// Headless-browser test of the upsguard web UI.
//
//   node ui-test.mjs            start target/debug/upsguard run --simulate (UPSGUARD_BIN overrides)
//   node ui-test.mjs --mock     use mock-api.mjs instead (checks the UI alone)
//
// Debian's chromium (/usr/bin/chromium) driven by playwright-core; no browser is downloaded.
// Steps: first-run setup with the token from the service log, login, dashboard shows the
// emulator's values and the shutdown plan, language switch (values and event titles in
// Japanese too), the shutdown page's policy-dependent fields, UPS setting labels, the event
// log (also at phone width), data-log charts, the problems banner, the outage countdown,
// network services marked not implemented, the version on the About page, logout.
// Screenshots go to artifacts/. Exit status is non-zero on failure; the last line is
// "N passed, N failed".
//
// Server fields the real-mode checks rely on (GET /api/v1/status): `version` (string),
// `shutdown` {phase, reason, policy, …, plan, starts_in_s, since, completed_at} and
// `problems` [{kind, key, message}]. In real mode the outage is made with the emulator's
// control port (--sim-control, "mains off" / "mains on").
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');
const ART = path.join(HERE, 'artifacts');
const MOCK = process.argv.includes('--mock');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const USER = 'upsadmin';
const PASS = 'Guard#2026ok';

fs.mkdirSync(ART, { recursive: true });
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'upsguard-ui-'));
let passed = 0;
let failed = 0;
let service = null;
let mock = null;
let context = null;
let serviceLog = '';
let simControl = null;
// Run after every check, passed or failed, so one failure does not leave the next check in
// Japanese or at phone width.
let afterEach = null;

function log(...a) {
  console.log(...a);
}

async function check(name, fn) {
  const t0 = Date.now();
  try {
    try {
      await fn();
    } finally {
      if (afterEach) await afterEach().catch(() => {});
    }
    passed += 1;
    log(`ok    ${name} (${Date.now() - t0} ms)`);
    return true;
  } catch (e) {
    failed += 1;
    log(`FAIL  ${name}: ${String(e && e.message ? e.message : e).split('\n').slice(0, 6).join('\n      ')}`);
    return false;
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function findBinary() {
  const candidates = [
    process.env.UPSGUARD_BIN,
    process.env.CARGO_TARGET_DIR && path.join(process.env.CARGO_TARGET_DIR, 'debug/upsguard'),
    path.join(REPO, 'target/debug/upsguard'),
  ].filter(Boolean);
  const found = candidates.find((p) => fs.existsSync(p));
  if (!found) throw new Error(`upsguard binary not found (tried ${candidates.join(', ')}); run cargo build first`);
  return found;
}

const TOKEN_RE = /\b([0-9a-fA-F]{8}(?:-[0-9a-fA-F]{8}){4})\b/;

async function startService() {
  const port = await freePort();
  const dataDir = path.join(tmp, 'data');
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const ini = path.join(tmp, 'upsguard.ini');
  fs.writeFileSync(ini, `[Web]\nbind = 127.0.0.1\nport = ${port}\n`, { mode: 0o600 });
  const bin = findBinary();
  const ctlPort = await freePort();
  simControl = { port: ctlPort };
  log(`starting ${bin} (port ${port}, emulator control ${ctlPort}, data ${dataDir})`);
  service = spawn(bin, ['run', '--simulate', '--sim-control', `127.0.0.1:${ctlPort}`, '--data-dir', dataDir, '--config', ini], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, UPSGUARD_LOG: process.env.UPSGUARD_LOG || 'info' },
  });
  const logFile = fs.createWriteStream(path.join(ART, 'service.log'));
  let exited = null;
  const onData = (d) => {
    serviceLog += d.toString();
    logFile.write(d);
  };
  service.stdout.on('data', onData);
  service.stderr.on('data', onData);
  service.on('exit', (code, sig) => {
    exited = `exited with ${code ?? sig}`;
  });
  const deadline = Date.now() + 60000;
  let token = null;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`service ${exited}; log:\n${serviceLog.slice(-2000)}`);
    token = token || (TOKEN_RE.exec(serviceLog) || [])[1] || null;
    if (token && (await portOpen(port))) return { base: `https://127.0.0.1:${port}/`, token };
    await sleep(250);
  }
  throw new Error(`no setup token and listening port within 60 s (token ${token ? 'seen' : 'not seen'}); log tail:\n${serviceLog.slice(-2000)}`);
}

function portOpen(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** One line to the emulator's control port (real mode); resolves with its answer line. */
function simCommand(cmd) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(simControl.port, '127.0.0.1');
    let buf = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no answer to "${cmd}" from the emulator control port`));
    }, 10000);
    sock.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.on('data', (d) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        sock.end();
        const line = buf.slice(0, nl).trim();
        if (!line.startsWith('OK')) reject(new Error(`emulator refused "${cmd}": ${line}`));
        else resolve(line);
      }
    });
    sock.once('connect', () => sock.write(`${cmd}\n`));
  });
}

/** GET /api/v1/<path> with the page's session cookie. */
async function apiGet(page, base, p) {
  const r = await page.request.get(new URL(`api/v1/${p}`, base).toString());
  assert(r.ok(), `GET /api/v1/${p} → ${r.status()}`);
  return r.json();
}

/** The page must not scroll sideways (phone layouts). */
async function noHorizontalOverflow(page, what) {
  const m = await page.evaluate(() => {
    const doc = document.documentElement;
    const wide = [...document.querySelectorAll('#page *')].filter((el) => el.getBoundingClientRect().right > doc.clientWidth + 1)
      .slice(0, 3).map((el) => `${el.tagName.toLowerCase()}${el.id ? `#${el.id}` : ''}.${[...el.classList].join('.')}`);
    const wraps = [...document.querySelectorAll('#page .table-wrap')].filter((el) => el.scrollWidth > el.clientWidth + 1).length;
    return { scroll: doc.scrollWidth, client: doc.clientWidth, wide, wraps };
  });
  assert(m.scroll <= m.client && m.wide.length === 0 && m.wraps === 0,
    `${what}: page ${m.scroll}px wide in a ${m.client}px viewport; ${m.wraps} scrolling tables; too wide: ${m.wide.join(', ')}`);
}

async function shot(page, name, fullPage = true) {
  try {
    await page.screenshot({ path: path.join(ART, `${name}.png`), fullPage });
  } catch (e) {
    log(`      (screenshot ${name} failed: ${e.message})`);
  }
}

async function main() {
  let base;
  let token;
  if (MOCK) {
    const { startMock } = await import('./mock-api.mjs');
    mock = await startMock();
    base = `http://127.0.0.1:${mock.port}/`;
    token = mock.token;
  }
  const started = await check('service starts and prints a setup token', async () => {
    if (MOCK) return;
    ({ base, token } = await startService());
  });
  if (!started) return;

  const profile = path.join(tmp, 'profile');
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    ignoreHTTPSErrors: true,
    viewport: { width: 1280, height: 860 },
    locale: 'en-US',
  });
  const page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(15000);
  const problems = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && !/Failed to load resource/.test(m.text())) problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  afterEach = async () => {
    const vp = page.viewportSize();
    if (!vp || vp.width !== 1280) await page.setViewportSize({ width: 1280, height: 860 });
    if ((await page.evaluate(() => document.documentElement.lang)) !== 'en' && (await page.locator('#lang-select').count())) {
      await page.selectOption('#lang-select', 'en');
      await page.waitForFunction(() => document.documentElement.lang === 'en', null, { timeout: 5000 });
    }
  };

  await check('UI loads with no script errors or CSP violations', async () => {
    const resp = await page.goto(base, { waitUntil: 'load' });
    assert(resp && resp.ok(), `GET / → ${resp && resp.status()}`);
    const csp = resp.headers()['content-security-policy'] || '';
    assert(csp.includes("script-src 'self'"), `CSP header missing or weak: ${csp}`);
    await page.waitForSelector('#page form', { timeout: 15000 });
    await sleep(300);
    assert(problems.length === 0, problems.join('\n'));
  });

  const setupOk = await check('first-run setup with the token from the service log', async () => {
    await page.waitForSelector('input[name="token"]');
    await shot(page, '01-setup');
    // The policy list reacts as the user types; a short password shows unmet rules.
    await page.fill('input[name="username"]', USER);
    await page.fill('input[name="new-password"]', 'short');
    const todo = await page.locator('#policy-rules li.todo').count();
    assert(todo > 0, 'policy checklist shows no unmet rule for "short"');
    await page.fill('input[name="token"]', token);
    await page.fill('input[name="new-password"]', PASS);
    await page.fill('input[name="confirm-password"]', PASS);
    const left = await page.locator('#policy-rules li.todo').count();
    assert(left === 0, `policy checklist still shows ${left} unmet rules for a valid password`);
    await page.click('form button[type="submit"]');
    // Setup signs in straight away; otherwise the login page is shown.
    await page.waitForSelector('#status-hero, input[name="password"]:not([autocomplete="new-password"])');
  });

  const loginOk = setupOk && (await check('login', async () => {
    if (await page.locator('#status-hero').count()) {
      // Setup already signed in: log out and in again so the login form itself is tested.
      await page.click('#logout');
    }
    await page.waitForSelector('input[name="username"]');
    await page.fill('input[name="username"]', USER);
    await page.fill('input[name="password"]', 'Wrong#Pass1');
    await page.click('form button[type="submit"]');
    await page.waitForFunction(() => (document.getElementById('login-message')?.textContent || '').length > 0);
    await shot(page, '02-login-failed');
    await page.fill('input[name="password"]', PASS);
    await page.click('form button[type="submit"]');
    await page.waitForSelector('#status-hero');
    assert(page.url().endsWith('#/status'), `after login the URL is ${page.url()}`);
  }));
  if (!loginOk) {
    await shot(page, '99-failure');
    return;
  }

  await check('dashboard shows the emulator (SMART-UPS 1000, OL)', async () => {
    await page.waitForFunction(() => /SMART-UPS 1000/i.test(document.getElementById('status-model')?.textContent || ''), null, { timeout: 20000 });
    await page.waitForFunction(() => /\bOL\b/.test(document.getElementById('status-badge')?.dataset.status || ''), null, { timeout: 20000 });
    const badge = (await page.textContent('#status-badge')) || '';
    assert(/OL/.test(badge), `badge text ${badge}`);
    const tiles = await page.locator('#status-tiles .tile').count();
    assert(tiles >= 6, `only ${tiles} tiles`);
    const charge = (await page.locator('#status-tiles .tile').first().textContent()) || '';
    assert(/\d+ %/.test(charge), `charge tile shows ${charge}`);
    await shot(page, '03-dashboard');
  });

  await check('dashboard shows the shutdown plan from status → shutdown (and no "in progress" when idle)', async () => {
    const st = await apiGet(page, base, 'status');
    const sd = st.shutdown;
    assert(sd && typeof sd === 'object', `GET /status has no shutdown object (keys: ${Object.keys(st).join(', ')})`);
    for (const k of ['phase', 'policy', 'plan']) assert(typeof sd[k] === 'string' && sd[k], `status.shutdown.${k} is ${JSON.stringify(sd[k])}`);
    for (const k of ['os_shutdown_s', 'command_file_s', 'margin_s', 'low_runtime_s']) assert(Number.isFinite(sd[k]), `status.shutdown.${k} is ${JSON.stringify(sd[k])}`);
    assert(sd.phase === 'idle', `phase on mains is ${sd.phase}`);
    await page.waitForSelector('#shutdown-plan');
    const plan = (await page.textContent('#shutdown-plan')) || '';
    assert(/Shutdown starts/.test(plan) && /safety margin/.test(plan), `plan sentence: ${plan}`);
    assert((await page.locator('#shutdown-progress, #shutdown-countdown, #shutdown-completed').count()) === 0, 'an idle dashboard shows a shutdown state line');
    assert(!/in progress/i.test((await page.textContent('#status-hero')) || ''), 'idle dashboard says "in progress"');
  });

  await check('dashboard polls /status as background requests (no idle-timeout refresh)', async () => {
    let n = 0;
    let marked = 0;
    const count = (r) => {
      if (!r.url().includes('/api/v1/status')) return;
      n += 1;
      if (r.headers()['x-upsguard-background'] === '1') marked += 1;
    };
    page.on('request', count);
    await sleep(4500);
    page.off('request', count);
    assert(n >= 2, `${n} status requests in 4.5 s`);
    assert(marked === n, `${marked} of ${n} polls marked X-Upsguard-Background`);
  });

  await check('language switch to Japanese and back', async () => {
    await page.selectOption('#lang-select', 'ja');
    await page.waitForFunction(() => document.documentElement.lang === 'ja');
    const h1 = (await page.textContent('#page h1')) || '';
    assert(h1.includes('UPS ステータス'), `Japanese heading is ${h1}`);
    await shot(page, '04-dashboard-ja');
    await page.selectOption('#lang-select', 'en');
    await page.waitForFunction(() => document.documentElement.lang === 'en');
  });

  await check('Japanese: status words, link state and shutdown phase are translated', async () => {
    await page.selectOption('#lang-select', 'ja');
    await page.waitForFunction(() => document.documentElement.lang === 'ja');
    await page.waitForSelector('#status-words');
    await page.waitForFunction(() => (document.getElementById('status-words')?.textContent || '').includes('オンライン'), null, { timeout: 10000 });
    const comm = (await page.textContent('#detail-comm')) || '';
    assert(comm === '接続済み', `link state in Japanese is ${comm}`);
    const phase = (await page.textContent('#detail-phase')) || '';
    assert(phase.includes('待機中'), `shutdown phase in Japanese: ${phase}`);
  });

  await check('Japanese: the plan sentence is composed in Japanese (status → shutdown)', async () => {
    await page.selectOption('#lang-select', 'ja');
    await page.waitForFunction(() => document.documentElement.lang === 'ja');
    await page.waitForSelector('#shutdown-plan', { timeout: 10000 });
    const plan = (await page.textContent('#shutdown-plan')) || '';
    assert(/シャットダウンを開始します/.test(plan) && /安全マージン/.test(plan) && !/Shutdown starts/.test(plan), `plan in Japanese: ${plan}`);
  });

  let newDelay = '';
  await check('shutdown page: policy first, only its fields shown (live), graceful sleep by default', async () => {
    await page.click('nav a[data-route="shutdown"]');
    const policy = page.locator('#cfg-Shutdown-policy');
    await policy.waitFor();
    const firstKey = await page.evaluate(() => document.querySelector('form[data-section="Shutdown"] [data-key]')?.dataset.key);
    assert(firstKey === 'policy', `first field of the form is ${firstKey}`);
    const visible = async (key) => page.locator(`#cfg-Shutdown-${key}`).isVisible();
    const expect = {
      on_battery_delay: { on_battery_delay_s: true, threshold_charge_pct: false, threshold_runtime_min: false, low_battery_runtime_s: false },
      threshold: { on_battery_delay_s: false, threshold_charge_pct: true, threshold_runtime_min: true, low_battery_runtime_s: false },
      low_battery: { on_battery_delay_s: false, threshold_charge_pct: false, threshold_runtime_min: false, low_battery_runtime_s: true },
      immediately: { on_battery_delay_s: false, threshold_charge_pct: false, threshold_runtime_min: false, low_battery_runtime_s: false },
    };
    for (const [pol, fields] of Object.entries(expect)) {
      await policy.selectOption(pol);
      for (const [key, want] of Object.entries(fields)) {
        const got = await visible(key);
        assert(got === want, `policy ${pol}: ${key} ${got ? 'shown' : 'hidden'}`);
      }
      if (pol === 'threshold') await shot(page, '05-shutdown-threshold');
    }
    const label = (await page.textContent('label[for="sleep-graceful"]')) || '';
    assert(label.includes('Shut down the OS first (recommended)'), `sleep checkbox label: ${label}`);
    assert(await page.isChecked('#sleep-graceful'), 'graceful sleep is not the default');
    await page.click('form[data-section="Shutdown"] button.btn-quiet');
  });

  await check('change a setting (Shutdown policy + on_battery_delay_s) and see it persist', async () => {
    await page.locator('#cfg-Shutdown-policy').selectOption('on_battery_delay');
    const input = page.locator('#cfg-Shutdown-on_battery_delay_s');
    await input.waitFor();
    const before = await input.inputValue();
    newDelay = String(before === '301' ? 302 : 301);
    await input.fill(newDelay);
    await page.click('form[data-section="Shutdown"] button[type="submit"]');
    await page.waitForFunction(() => (document.getElementById('notice')?.textContent || '').length > 0);
    assert(await page.locator('#alert').isHidden(), `error shown: ${await page.textContent('#alert')}`);
    await shot(page, '05-shutdown-saved');
    await page.reload();
    await page.locator('#cfg-Shutdown-on_battery_delay_s').waitFor();
    const after = await page.locator('#cfg-Shutdown-on_battery_delay_s').inputValue();
    assert(after === newDelay, `after reload the value is ${after}, expected ${newDelay}`);
    assert((await page.locator('#cfg-Shutdown-policy').inputValue()) === 'on_battery_delay', 'policy not kept');
  });

  await check('shutdown page: the plan (status → shutdown) is on top and previews unsaved edits', async () => {
    const st = await apiGet(page, base, 'status');
    assert(st.shutdown && st.shutdown.policy === 'on_battery_delay' && st.shutdown.on_battery_delay_s === Number(newDelay),
      `status.shutdown after saving policy on_battery_delay, ${newDelay} s: ${JSON.stringify(st.shutdown)}`);
    const above = await page.evaluate(() => {
      const plan = document.querySelector('.plan-card');
      const form = document.querySelector('form[data-section="Shutdown"]');
      return plan && form ? Boolean(plan.compareDocumentPosition(form) & Node.DOCUMENT_POSITION_FOLLOWING) : false;
    });
    assert(above, 'the plan card is not above the settings form');
    await page.waitForFunction(() => /after 5 min [12] s on battery/.test(document.getElementById('shutdown-plan')?.textContent || ''), null, { timeout: 10000 });
    assert(/saved settings/.test((await page.textContent('#shutdown-plan-label')) || ''), 'saved plan not labelled as such');
    await page.locator('#cfg-Shutdown-policy').selectOption('threshold');
    const plan = (await page.textContent('#shutdown-plan')) || '';
    assert(/charge falls to/.test(plan), `plan preview for threshold: ${plan}`);
    assert(/not saved/.test((await page.textContent('#shutdown-plan-label')) || ''), 'the preview is not marked as unsaved');
    await shot(page, '05-shutdown-plan-preview');
    await page.click('form[data-section="Shutdown"] button.btn-quiet');
    await page.waitForFunction(() => /saved settings/.test(document.getElementById('shutdown-plan-label')?.textContent || ''));
  });

  await check('a refused value is reported beside its field (command file path)', async () => {
    const input = page.locator('#cfg-Shutdown-command_file');
    await input.waitFor();
    await input.fill('../evil.sh');
    await page.click('form[data-section="Shutdown"] button[type="submit"]');
    const err = page.locator('#cfg-Shutdown-command_file-err');
    await err.waitFor({ state: 'visible', timeout: 10000 });
    const text = (await err.textContent()) || '';
    assert(/command_file/.test(text), `field error: ${text}`);
    assert((await input.getAttribute('aria-invalid')) === 'true', 'field not marked aria-invalid');
    await shot(page, '05-shutdown-field-error');
    await page.click('form[data-section="Shutdown"] button.btn-quiet');
    await page.waitForFunction(() => document.getElementById('cfg-Shutdown-command_file')?.value !== '../evil.sh');
  });

  await check('UPS settings: dropdowns of permitted values; change sensitivity', async () => {
    await page.click('nav a[data-route="ups"]');
    await page.waitForSelector('#ups-settings select, #ups-settings .empty');
    const selects = await page.locator('#ups-settings select').count();
    assert(selects > 0, 'no UPS setting dropdowns');
    const sel = page.locator('#ups-settings select[data-setting="sensitivity"]');
    assert((await sel.count()) === 1, 'no sensitivity dropdown');
    const values = await sel.locator('option').evaluateAll((os) => os.map((o) => o.value));
    assert(values.length > 1, `sensitivity offers ${values.join(',')}`);
    // Readable labels beside the UPS's codes; the submitted values stay the codes.
    const labels = { sensitivity: { H: 'H — high', M: 'M — medium', L: 'L — low', A: 'A — auto' },
      alarm_delay: { 0: '0 — 5 s delay', T: 'T — 30 s delay', L: 'L — at low battery only', N: 'N — never (disabled)' },
      self_test_interval: { 336: '336 — every 14 days', 168: '168 — every 7 days', ON: 'ON — at power-on only', OFF: 'OFF — never' } };
    for (const [name, want] of Object.entries(labels)) {
      const opts = await page.locator(`#ups-settings select[data-setting="${name}"] option`).evaluateAll((os) => os.map((o) => [o.value, o.textContent]));
      assert(opts.length > 0, `no ${name} dropdown`);
      for (const [v, text] of opts) {
        assert(Object.hasOwn(want, v), `${name}: unexpected code ${v}`);
        assert(text === want[v], `${name} option ${v} reads "${text}", expected "${want[v]}"`);
      }
    }
    const before = await sel.inputValue();
    const next = values.find((v) => v !== before);
    await sel.selectOption(next);
    const row = page.locator('.row-setting', { has: page.locator('select[data-setting="sensitivity"]') });
    await row.locator('button').click();
    // This change's own notice ("… set to <value>."), not one left over from an earlier check.
    await page.waitForFunction((v) => (document.getElementById('notice')?.textContent || '').includes(` ${v} — `) || !document.getElementById('alert').hidden, next, { timeout: 30000 });
    assert(await page.locator('#alert').isHidden(), `error shown: ${await page.textContent('#alert')}`);
    await page.waitForFunction((v) => document.querySelector('#ups-settings select[data-setting="sensitivity"]')?.value === v, next, { timeout: 30000 });
    await shot(page, '06-ups-settings');
    await page.selectOption('#lang-select', 'ja');
    await page.waitForFunction(() => document.documentElement.lang === 'ja');
    await page.waitForSelector('#ups-settings select[data-setting="self_test_interval"]');
    const ja = await page.locator('#ups-settings select[data-setting="self_test_interval"] option[value="336"]').textContent();
    assert(ja === '336 — 14 日ごと', `Japanese self-test interval label: ${ja}`);
    await shot(page, '06-ups-settings-ja');
    await page.selectOption('#lang-select', 'en');
    await page.waitForFunction(() => document.documentElement.lang === 'en');
  });

  await check('the event log shows events (login / configuration change)', async () => {
    await page.click('nav a[data-route="events"]');
    await page.waitForSelector('#event-table tbody tr', { timeout: 15000 });
    const rows = await page.locator('#event-table tbody tr').count();
    assert(rows > 0, 'no event rows');
    const text = (await page.textContent('#event-table')) || '';
    assert(/log(ged)?[ _-]?in|login|config/i.test(text), `no login or configuration event among ${rows} rows`);
    const csv = await page.getAttribute('a[download="events.csv"]', 'href');
    assert(csv === '/api/v1/events.csv', `CSV link ${csv}`);
    // Dates in the browser's locale (Intl), the exact UTC instant in datetime=.
    const dates = await page.evaluate(() => [...document.querySelectorAll('#event-table time')].slice(0, 5).map((el) => {
      const want = new Intl.DateTimeFormat(navigator.language, { year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' }).format(new Date(el.getAttribute('datetime')));
      return [el.textContent, want];
    }));
    assert(dates.length > 0, 'no <time> in the event table');
    for (const [got, want] of dates) assert(got === want, `event time "${got}", expected "${want}" (Intl, navigator.language)`);
    await shot(page, '07-events');
  });

  await check('Japanese event log: titles from the event ids, dates in Japanese order', async () => {
    await page.selectOption('#lang-select', 'ja');
    await page.waitForFunction(() => document.documentElement.lang === 'ja');
    await page.waitForSelector('#event-table tbody tr');
    const login = await page.locator('#event-table tr[data-event="login"] .ev-name').first().textContent();
    assert(login === 'ログイン', `login event title in Japanese: ${login}`);
    const cfg = page.locator('#event-table tr[data-event="configuration_changed"] .ev-name');
    if (await cfg.count()) assert((await cfg.first().textContent()) === '設定の変更', 'configuration_changed not translated');
    const detail = (await page.locator('#event-table tr[data-event="login"] .ev-msg').first().textContent()) || '';
    assert(detail.length > 0, 'the server message is not kept as detail');
    if (MOCK) {
      const unknown = await page.locator('#event-table tr[data-event="mock_only_event"] .ev-name').textContent();
      assert(unknown === 'An event id the UI does not know', `unknown id falls back to ${unknown}`);
      const cleared = await page.locator('#event-table tr[data-event="low_battery"] .ev-name').allTextContents();
      assert(cleared.includes('バッテリー残量低下の解消') && cleared.includes('バッテリー残量低下'), `low_battery titles: ${cleared.join(' / ')}`);
    }
    const time = (await page.locator('#event-table time').first().textContent()) || '';
    assert(/^\d{4}\/\d{2}\/\d{2} \d{1,2}:\d{2}:\d{2}$/.test(time), `Japanese date format: ${time}`);
    await shot(page, '07-events-ja');
  });

  await check('event log at phone width (390 px): cards, no horizontal scrolling (JA and EN)', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    try {
    await sleep(300);
    await noHorizontalOverflow(page, 'JA event log');
    const display = await page.evaluate(() => getComputedStyle(document.querySelector('#event-table tbody tr')).display);
    assert(display === 'block', `rows are not stacked at phone width (display ${display})`);
    await shot(page, '07-events-phone-ja');
    await shot(page, '07-events-phone-ja-top', false);
    await page.selectOption('#lang-select', 'en');
    await page.waitForFunction(() => document.documentElement.lang === 'en');
    await page.waitForSelector('#event-table tbody tr');
    await sleep(300);
    await noHorizontalOverflow(page, 'EN event log');
    await shot(page, '07-events-phone');
    await shot(page, '07-events-phone-top', false);
    } finally {
      await page.setViewportSize({ width: 1280, height: 860 });
      if ((await page.evaluate(() => document.documentElement.lang)) !== 'en') {
        await page.selectOption('#lang-select', 'en');
        await page.waitForFunction(() => document.documentElement.lang === 'en');
      }
    }
  });

  await check('data log page draws charts', async () => {
    await page.click('nav a[data-route="datalog"]');
    await page.waitForSelector('#datalog-charts figure.chart');
    const n = await page.locator('#datalog-charts figure.chart').count();
    assert(n >= 4, `${n} charts`);
    await shot(page, '08-datalog');
  });

  await check('every page renders without script errors', async () => {
    for (const r of ['eventcfg', 'schedules', 'diagnostics', 'network', 'notifications', 'security', 'about']) {
      await page.click(`nav a[data-route="${r}"]`);
      await page.waitForFunction((name) => document.querySelector(`nav a[aria-current="page"]`)?.dataset.route === name, r);
      await page.waitForSelector('#page h1');
      await sleep(400);
      await shot(page, `09-${r}`);
    }
    assert(problems.length === 0, problems.join('\n'));
  });

  await check('notifications: save a webhook, see it persist, send a test and see its result', async () => {
    await page.click('nav a[data-route="notifications"]');
    await page.locator('#notify-webhook_url').waitFor();
    // Port 1 on loopback: nothing listens, so the test message must report a failure.
    const url = 'https://127.0.0.1:1/upsguard-hook';
    await page.check('#notify-webhook_enabled');
    await page.fill('#notify-webhook_url', url);
    await page.click('#notify-save');
    await page.waitForFunction(() => /form-message (info|error)/.test(document.getElementById('notify-message')?.className || ''));
    const cls = await page.getAttribute('#notify-message', 'class');
    assert(cls.includes('info'), `save failed: ${await page.textContent('#notify-message')}`);
    await page.reload();
    await page.locator('#notify-webhook_url').waitFor();
    await page.waitForFunction((u) => document.getElementById('notify-webhook_url')?.value === u, url, { timeout: 10000 });
    assert(await page.isChecked('#notify-webhook_enabled'), 'webhook not enabled after reload');
    await page.click('#notify-test');
    await page.waitForSelector('#notify-results li[data-channel="webhook"]', { timeout: 30000 });
    const result = (await page.textContent('#notify-results li[data-channel="webhook"]')) || '';
    assert(/failed/i.test(result), `webhook test result: ${result}`);
    await shot(page, '09-notifications-test');
  });

  await check('security page shows the served certificate (RSA 2048)', async () => {
    await page.click('nav a[data-route="security"]');
    await page.waitForSelector('#cert-key');
    const key = (await page.textContent('#cert-key')) || '';
    assert(/RSA/.test(key) && /2048/.test(key), `certificate key shown as ${key}`);
    await shot(page, '09-security-cert');
  });

  await check('network services say plainly that SNMP, NUT and NIS are not implemented (EN, JA)', async () => {
    await page.click('nav a[data-route="network"]');
    for (const proto of ['SNMP', 'NUT', 'NIS']) {
      const note = page.locator(`form[data-section="${proto}"] .not-implemented[data-service="${proto}"]`);
      await note.waitFor();
      const text = (await note.textContent()) || '';
      assert(text.includes(`Not implemented yet: upsguard does not listen for ${proto} in this version; these settings are saved but have no effect`), `${proto} note: ${text}`);
    }
    await shot(page, '12-network');
    await page.selectOption('#lang-select', 'ja');
    await page.waitForFunction(() => document.documentElement.lang === 'ja');
    const ja = (await page.locator('form[data-section="NUT"] .not-implemented').textContent()) || '';
    assert(ja.startsWith('未実装') && ja.includes('NUT') && ja.includes('効果はありません'), `Japanese NUT note: ${ja}`);
    await shot(page, '12-network-ja');
    await page.selectOption('#lang-select', 'en');
    await page.waitForFunction(() => document.documentElement.lang === 'en');
  });

  await check('About shows the version (status → version)', async () => {
    const st = await apiGet(page, base, 'status');
    assert(typeof st.version === 'string' && /^\d+\.\d+\.\d+/.test(st.version), `GET /status → version is ${JSON.stringify(st.version)}`);
    await page.click('nav a[data-route="about"]');
    await page.waitForFunction(() => document.getElementById('about-version')?.dataset.version !== undefined);
    const shown = (await page.textContent('#about-version')) || '';
    assert(shown === `upsguard ${st.version}`, `About shows "${shown}", status says ${st.version}`);
    await shot(page, '13-about');
  });

  await check('problems banner follows status → problems on every page', async () => {
    if (MOCK) mock.state.problems = mock.sampleProblems.slice();
    const st = await apiGet(page, base, 'status');
    assert(Array.isArray(st.problems), `GET /status → problems is ${JSON.stringify(st.problems)}`);
    await page.click('nav a[data-route="status"]');
    if (st.problems.length === 0) {
      await sleep(2500);
      assert(await page.locator('#problems').isHidden(), 'banner shown while status reports no problems');
      return;
    }
    await page.waitForSelector('#problems li', { timeout: 10000 });
    const items = await page.locator('#problems li').count();
    assert(items === st.problems.length, `${items} banner items for ${st.problems.length} problems`);
    const first = st.problems[0];
    const text = (await page.textContent('#problems')) || '';
    assert(text.includes(first.message), `banner lacks the server message "${first.message}"`);
    if (MOCK) assert(text.includes('The event log cannot be written') && text.includes('Not implemented in this version'), `banner titles: ${text}`);
    await shot(page, '14-problems');
    await page.click('nav a[data-route="events"]');
    await page.waitForSelector('#event-table');
    assert(await page.locator('#problems').isVisible(), 'banner not shown on the event log page');
    await page.selectOption('#lang-select', 'ja');
    await page.waitForFunction(() => document.documentElement.lang === 'ja');
    if (MOCK) assert(((await page.textContent('#problems')) || '').includes('イベントログに書き込めません'), 'banner title not translated');
    await shot(page, '14-problems-ja');
    await page.selectOption('#lang-select', 'en');
    await page.waitForFunction(() => document.documentElement.lang === 'en');
    if (MOCK) {
      mock.state.problems = [];
      await page.click('nav a[data-route="status"]');
      await page.waitForSelector('#problems', { state: 'hidden', timeout: 10000 });
    }
  });

  await check('outage: the dashboard counts down to the shutdown; no "in progress" before it starts', async () => {
    await page.click('nav a[data-route="status"]');
    await page.waitForSelector('#status-badge');
    if (MOCK) mock.scenario('outage');
    else await simCommand('mains off');
    try {
      await page.waitForSelector('#shutdown-countdown', { timeout: 30000 });
      const st = await apiGet(page, base, 'status');
      assert(st.shutdown && Number.isFinite(st.shutdown.starts_in_s), `status.shutdown.starts_in_s during an outage: ${JSON.stringify(st.shutdown)}`);
      const a = (await page.textContent('#shutdown-countdown')) || '';
      assert(/^Shutdown starts in about (\d+ min \d+ s|\d+ s)/.test(a), `countdown text: ${a}`);
      const s1 = Number(await page.getAttribute('#shutdown-countdown', 'data-seconds'));
      await sleep(2200);
      const s2 = Number(await page.getAttribute('#shutdown-countdown', 'data-seconds'));
      assert(s2 < s1, `countdown does not run: ${s1} → ${s2}`);
      assert((await page.locator('#shutdown-progress').count()) === 0, 'countdown shown together with "in progress"');
      await shot(page, '15-outage-countdown');
      await page.selectOption('#lang-select', 'ja');
      await page.waitForFunction(() => document.documentElement.lang === 'ja');
      await page.waitForSelector('#shutdown-countdown');
      const ja = (await page.textContent('#shutdown-countdown')) || '';
      assert(ja.startsWith('シャットダウン開始まで約'), `Japanese countdown: ${ja}`);
      await shot(page, '15-outage-countdown-ja');
      await page.selectOption('#lang-select', 'en');
      await page.waitForFunction(() => document.documentElement.lang === 'en');
    } finally {
      if (MOCK) mock.scenario('normal');
      else await simCommand('mains on');
    }
    await page.waitForSelector('#shutdown-countdown', { state: 'detached', timeout: 60000 });
  });

  if (MOCK) {
    await check('mock: a completed sequence is not shown as in progress; a running one is', async () => {
      mock.scenario('completed');
      await page.waitForSelector('#shutdown-completed', { timeout: 10000 });
      const done = (await page.textContent('#shutdown-completed')) || '';
      assert(/^Last shutdown sequence completed at /.test(done), `completed text: ${done}`);
      assert((await page.locator('#shutdown-progress, #shutdown-countdown').count()) === 0, 'completed phase shows progress or a countdown');
      assert(!/in progress/i.test((await page.textContent('#status-hero')) || ''), 'completed phase says "in progress"');
      await shot(page, '16-completed');
      mock.scenario('running');
      await page.waitForSelector('#shutdown-progress', { timeout: 10000 });
      const run = (await page.textContent('#shutdown-progress')) || '';
      assert(/Shutdown in progress: OS shutdown started/.test(run), `running text: ${run}`);
      await shot(page, '16-running');
      // An older server: no `shutdown` object, only shutdown_phase.
      mock.state.legacy = true;
      mock.scenario('outage');
      await page.waitForFunction(() => /Pending/.test(document.getElementById('shutdown-countdown')?.textContent || ''), null, { timeout: 10000 });
      assert((await page.locator('#shutdown-plan').count()) === 0, 'plan shown without a shutdown object');
      mock.state.legacy = false;
      mock.scenario('normal');
      await page.waitForSelector('#shutdown-plan', { timeout: 10000 });
      assert(problems.length === 0, problems.join('\n'));
    });
  }

  await check('phone layout: menu button opens the navigation', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.click('#nav-toggle');
    await page.click('nav a[data-route="status"]');
    await page.waitForSelector('#status-badge');
    await sleep(500);
    await noHorizontalOverflow(page, 'dashboard');
    await shot(page, '10-phone-dashboard');
    await page.selectOption('#lang-select', 'ja');
    await page.waitForFunction(() => document.documentElement.lang === 'ja');
    await page.waitForSelector('#status-badge');
    await sleep(500);
    await noHorizontalOverflow(page, 'Japanese dashboard');
    await shot(page, '10-phone-dashboard-ja');
    await page.selectOption('#lang-select', 'en');
    await page.waitForFunction(() => document.documentElement.lang === 'en');
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  await check('logout ends the session', async () => {
    await page.click('#logout');
    await page.waitForSelector('input[name="username"]');
    await shot(page, '11-logged-out');
    const r = await page.request.get(new URL('api/v1/status', base).toString());
    assert(r.status() === 401, `GET /api/v1/status after logout → ${r.status()}`);
  });

  await check('keyboard: skip link is first in tab order and moves focus to main', async () => {
    await page.goto(base);
    await page.waitForSelector('input[name="username"]');
    const first = await page.evaluate(() => {
      const all = [...document.querySelectorAll('a[href], button, input, select, textarea, [tabindex]')];
      const f = all.find((el) => el.tabIndex >= 0 && !el.disabled && el.offsetParent !== null || el.id === 'skip-link');
      return f && f.id;
    });
    assert(first === 'skip-link', `first focusable element is #${first}`);
    await page.focus('#skip-link');
    const box = await page.locator('#skip-link').boundingBox();
    assert(box && box.y >= 0, 'focused skip link is not on screen');
    await page.keyboard.press('Enter');
    const active = await page.evaluate(() => document.activeElement && document.activeElement.id);
    assert(active === 'main', `after Enter focus is on #${active}`);
  });
}

try {
  await main();
} catch (e) {
  failed += 1;
  log(`FAIL  unexpected: ${e && e.stack ? e.stack : e}`);
} finally {
  if (context) await context.close().catch(() => {});
  if (mock) mock.server.close();
  if (service && service.exitCode === null) {
    service.kill('SIGTERM');
    await Promise.race([new Promise((r) => service.once('exit', r)), sleep(5000)]);
    if (service.exitCode === null) service.kill('SIGKILL');
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  console.log(`${passed} passed, ${failed} failed`);
  process.exitCode = failed > 0 ? 1 : 0;
}
