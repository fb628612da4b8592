// Headless-browser test of the upsguard web UI.
//
//   node ui-test.mjs            start target/debug/upsguard run --simulate (UPSGUARD_BIN overrides)
//   node ui-test.mjs --mock     use mock-api.mjs instead (checks the UI alone)
//
// Debian's chromium (/usr/bin/chromium) driven by playwright-core; no browser is downloaded.
// Steps: first-run setup with the token from the service log, login, dashboard shows the
// emulator's values, language switch, change a setting, see an event, data-log charts, logout.
// Screenshots go to artifacts/. Exit status is non-zero on failure; the last line is
// "N passed, N failed".
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

function log(...a) {
  console.log(...a);
}

async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
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
  log(`starting ${bin} (port ${port}, data ${dataDir})`);
  service = spawn(bin, ['run', '--simulate', '--data-dir', dataDir, '--config', ini], {
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

async function shot(page, name) {
  try {
    await page.screenshot({ path: path.join(ART, `${name}.png`), fullPage: true });
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

  let newDelay = '';
  await check('change a setting (Shutdown on_battery_delay_s) and see it persist', async () => {
    await page.click('nav a[data-route="shutdown"]');
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
    const before = await sel.inputValue();
    const next = values.find((v) => v !== before);
    await sel.selectOption(next);
    const row = page.locator('.row-setting', { has: page.locator('select[data-setting="sensitivity"]') });
    await row.locator('button').click();
    // This change's own notice ("… set to <value>."), not one left over from an earlier check.
    await page.waitForFunction((v) => (document.getElementById('notice')?.textContent || '').includes(` ${v}.`) || !document.getElementById('alert').hidden, next, { timeout: 30000 });
    assert(await page.locator('#alert').isHidden(), `error shown: ${await page.textContent('#alert')}`);
    await page.waitForFunction((v) => document.querySelector('#ups-settings select[data-setting="sensitivity"]')?.value === v, next, { timeout: 30000 });
    await shot(page, '06-ups-settings');
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
    await shot(page, '07-events');
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

  await check('phone layout: menu button opens the navigation', async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.click('#nav-toggle');
    await page.click('nav a[data-route="status"]');
    await page.waitForSelector('#status-badge');
    await shot(page, '10-phone-dashboard');
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
