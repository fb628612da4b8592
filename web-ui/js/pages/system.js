// Diagnostics, notifications, security, about.
import * as api from '../api.js';
import { h } from '../dom.js';
import { t } from '../i18n.js';
import { pageHeader, section, field, fieldError, busy, note, dl, loading, timestamp, select } from '../ui.js';
import { policyChecks } from './auth.js';
import { configForm } from './settings.js';
import { selfTestText, transferText } from '../words.js';

export function renderDiagnostics(root, ctx) {
  root.append(pageHeader('diag.title', 'diag.intro'));
  const result = h('div', { id: 'selftest-result' }, loading());
  const run = h('button', { type: 'button', class: 'btn btn-primary', text: t('diag.runSelfTest'), id: 'selftest-run' });
  async function showLast() {
    try {
      const st = await api.status();
      result.replaceChildren(dl([
        [t('status.selfTest'), selfTestText(st.self_test)],
        [t('status.lastTransfer'), transferText(st.last_transfer)],
        [t('status.batteryV'), st.battery_voltage === undefined ? '—' : `${st.battery_voltage} V`],
      ]));
    } catch {
      result.replaceChildren(h('p', { class: 'empty', text: t('common.loadFailed') }));
    }
  }
  run.addEventListener('click', async () => {
    try {
      await busy(run, () => api.selfTest());
      ctx.notify(t('diag.started'));
      setTimeout(showLast, 3000);
    } catch { /* shown */ }
  });
  root.append(section('diag.selfTest', [note('diag.selfTestNote', 'hint'), result, h('div', { class: 'actions' }, [run])]));
  const cal = h('button', { type: 'button', class: 'btn', text: t('diag.runCalibration'), id: 'cal-start' });
  const calStop = h('button', { type: 'button', class: 'btn', text: t('diag.abortCalibration'), id: 'cal-abort' });
  for (const [btn, abort, msg] of [[cal, false, 'diag.calStarted'], [calStop, true, 'diag.calAborted']]) {
    btn.addEventListener('click', async () => {
      if (!abort && !window.confirm(t('diag.calConfirm'))) return;
      try {
        await busy(btn, () => api.calibrate(abort));
        ctx.notify(t(msg));
      } catch { /* shown */ }
    });
  }
  root.append(section('diag.calibration', [
    h('p', { class: 'hint', text: t('diag.calibrationNote') }),
    h('div', { class: 'actions' }, [cal, calStop]),
  ]));
  showLast();
}

const NOTIFY_TEXT = ['smtp_host', 'smtp_port', 'smtp_username', 'smtp_pin_sha256', 'mail_from', 'mail_to', 'webhook_url', 'webhook_pin_sha256'];

export function renderNotifications(root, ctx) {
  root.append(pageHeader('notify.title', 'notify.intro'));
  const ctl = {
    email_enabled: h('input', { type: 'checkbox', id: 'notify-email_enabled' }),
    smtp_host: h('input', { type: 'text', id: 'notify-smtp_host', autocomplete: 'off', spellcheck: 'false' }),
    smtp_port: h('input', { type: 'number', id: 'notify-smtp_port', min: 1, max: 65535, step: 1, inputmode: 'numeric' }),
    smtp_security: select([['starttls', t('notify.sec.starttls')], ['tls', t('notify.sec.tls')], ['none', t('notify.sec.none')]], 'starttls'),
    smtp_username: h('input', { type: 'text', id: 'notify-smtp_username', autocomplete: 'off', spellcheck: 'false' }),
    smtp_pin_sha256: h('input', { type: 'text', id: 'notify-smtp_pin_sha256', autocomplete: 'off', spellcheck: 'false', class: 'mono' }),
    mail_from: h('input', { type: 'email', id: 'notify-mail_from', autocomplete: 'off' }),
    mail_to: h('input', { type: 'text', id: 'notify-mail_to', autocomplete: 'off', spellcheck: 'false' }),
    webhook_enabled: h('input', { type: 'checkbox', id: 'notify-webhook_enabled' }),
    webhook_url: h('input', { type: 'url', id: 'notify-webhook_url', autocomplete: 'off', spellcheck: 'false' }),
    webhook_pin_sha256: h('input', { type: 'text', id: 'notify-webhook_pin_sha256', autocomplete: 'off', spellcheck: 'false', class: 'mono' }),
  };
  ctl.smtp_security.id = 'notify-smtp_security';
  const password = h('input', { type: 'password', id: 'notify-smtp_password', autocomplete: 'new-password', maxlength: 256 });
  const clearPw = h('input', { type: 'checkbox', id: 'notify-smtp_password_clear' });
  const pwState = h('p', { class: 'hint', id: 'notify-pw-state', 'aria-live': 'polite' });
  const check = (c, key, hintKey) => h('div', { class: 'field field-check' }, [c, h('label', { for: c.id, text: t(key) }), hintKey ? h('p', { class: 'hint', text: t(hintKey) }) : null]);

  const email = h('fieldset', null, [
    h('legend', { text: t('notify.email') }),
    check(ctl.email_enabled, 'notify.emailEnabled'),
    field(t('notify.smtpHost'), ctl.smtp_host),
    field(t('notify.smtpPort'), ctl.smtp_port, t('common.range', { min: 1, max: 65535 })),
    field(t('notify.security'), ctl.smtp_security, t('notify.securityHint')),
    field(t('notify.username'), ctl.smtp_username, t('notify.usernameHint')),
    field(t('notify.password'), password, t('notify.passwordHint')),
    pwState,
    check(clearPw, 'notify.passwordClear'),
    field(t('notify.from'), ctl.mail_from),
    field(t('notify.to'), ctl.mail_to, t('notify.toHint')),
    field(t('notify.smtpPin'), ctl.smtp_pin_sha256, t('notify.pinHint')),
  ]);
  const hook = h('fieldset', null, [
    h('legend', { text: t('notify.webhook') }),
    check(ctl.webhook_enabled, 'notify.webhookEnabled'),
    field(t('notify.url'), ctl.webhook_url, t('notify.urlHint')),
    field(t('notify.webhookPin'), ctl.webhook_pin_sha256, t('notify.pinHint')),
  ]);
  const msg = h('div', { class: 'form-message', role: 'alert', id: 'notify-message' });
  const save = h('button', { type: 'submit', class: 'btn btn-primary', text: t('common.save'), id: 'notify-save' });
  const test = h('button', { type: 'button', class: 'btn', text: t('notify.test'), id: 'notify-test' });
  const results = h('ul', { class: 'bullets', id: 'notify-results', 'aria-live': 'polite' });
  const form = h('form', { class: 'card', 'aria-labelledby': 'notify-h', novalidate: true }, [
    h('h2', { id: 'notify-h', text: t('notify.settings') }),
    email, hook, msg,
    h('div', { class: 'actions' }, [save, test]),
    h('h3', { text: t('notify.results') }),
    results,
  ]);
  root.append(form);

  let original = {};
  const showPw = (set) => { pwState.textContent = t(set ? 'notify.passwordStored' : 'notify.passwordNone'); };
  async function load() {
    try {
      original = await api.config('Notifications');
    } catch {
      msg.className = 'form-message error';
      msg.textContent = t('common.loadFailed');
      return;
    }
    for (const [k, c] of Object.entries(ctl)) {
      const v = original[k] ?? '';
      if (c.type === 'checkbox') c.checked = /^(true|yes|on|1)$/i.test(String(v));
      else c.value = String(v);
    }
    api.smtpPasswordState().then((r) => showPw(Boolean(r.set))).catch(() => { pwState.textContent = ''; });
  }

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    msg.className = 'form-message';
    msg.textContent = '';
    for (const c of Object.values(ctl)) fieldError(c, '');
    const values = {};
    for (const [k, c] of Object.entries(ctl)) {
      const v = c.type === 'checkbox' ? (c.checked ? 'true' : 'false') : NOTIFY_TEXT.includes(k) ? c.value.trim() : c.value;
      if (String(original[k] ?? '') !== v) values[k] = v;
    }
    try {
      await busy(save, async () => {
        if (Object.keys(values).length > 0) await api.setConfig('Notifications', values);
        if (password.value !== '' || clearPw.checked) {
          const r = await api.setSmtpPassword(clearPw.checked ? '' : password.value);
          password.value = '';
          clearPw.checked = false;
          showPw(Boolean(r.set));
        }
      });
      await load();
      msg.className = 'form-message info';
      msg.textContent = t('notify.saved');
      ctx.notify(t('notify.saved'));
    } catch (err) {
      msg.className = 'form-message error';
      msg.textContent = ctx.errorText(err);
      const key = err && err.body && typeof err.body.key === 'string' ? err.body.key.toLowerCase() : '';
      if (ctl[key]) {
        fieldError(ctl[key], err.message);
        ctl[key].focus();
      }
    }
  });

  test.addEventListener('click', async () => {
    msg.className = 'form-message';
    msg.textContent = '';
    results.replaceChildren(h('li', { text: t('notify.testing') }));
    try {
      const r = await busy(test, () => api.testNotifications());
      const list = Array.isArray(r.results) ? r.results : [];
      results.replaceChildren(...list.map((x) => h('li', { class: x.ok ? 'ok' : 'todo', 'data-channel': x.channel }, [
        h('strong', { text: `${t(x.channel === 'email' ? 'notify.email' : 'notify.webhook')}: ${t(x.ok ? 'notify.sent' : 'notify.failed')}` }),
        h('span', { text: ` — ${x.detail || ''}` }),
      ])));
    } catch (err) {
      results.replaceChildren(h('li', { class: 'todo', text: ctx.errorText(err) }));
    }
  });
  load();
}

export function renderSecurity(root, ctx) {
  root.append(pageHeader('sec.title', 'sec.intro'));

  // Change password.
  const cur = h('input', { type: 'password', autocomplete: 'current-password', required: true, maxlength: 128 });
  const pw = h('input', { type: 'password', autocomplete: 'new-password', required: true, maxlength: 128 });
  const pw2 = h('input', { type: 'password', autocomplete: 'new-password', required: true, maxlength: 128 });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', text: t('sec.change') });
  const msg = h('div', { class: 'form-message', role: 'alert' });
  const rules = h('ul', { class: 'policy' });
  const username = (ctx.user && ctx.user.username) || '';
  const drawRules = () => rules.replaceChildren(...policyChecks(username, pw.value).filter(([k]) => k.startsWith('policy.pass')).map(([k, ok]) =>
    h('li', { class: ok ? 'ok' : 'todo' }, [h('span', { class: 'mark', 'aria-hidden': 'true', text: ok ? '✓' : '•' }), h('span', { text: t(k) })])));
  pw.addEventListener('input', drawRules);
  drawRules();
  const form = h('form', { class: 'card', 'aria-labelledby': 'pw-h' }, [
    h('h2', { id: 'pw-h', text: t('sec.password') }),
    field(t('sec.current'), cur),
    field(t('setup.password'), pw),
    field(t('setup.confirm'), pw2),
    rules,
    msg,
    h('div', { class: 'actions' }, [submit]),
  ]);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    msg.textContent = '';
    fieldError(pw2, '');
    if (pw.value !== pw2.value) {
      fieldError(pw2, t('setup.mismatch'));
      return;
    }
    try {
      await busy(submit, () => api.changePassword(cur.value, pw.value));
      cur.value = pw.value = pw2.value = '';
      drawRules();
      ctx.notify(t('sec.changed'));
    } catch (err) {
      msg.className = 'form-message error';
      msg.textContent = ctx.errorText(err);
    }
  });
  root.append(form);

  // Certificate.
  const certBox = h('div', { id: 'cert-info' }, loading());
  const reload = h('button', { type: 'button', class: 'btn', text: t('sec.reload') });
  root.append(section('sec.cert', [certBox, note('sec.certCli', 'hint'), h('div', { class: 'actions' }, [reload])]));
  const showCert = (c) => {
    const days = Number(c.days_until_expiry);
    const key = [c.key_type || c.key, c.key_bits ? t('sec.bits', { n: c.key_bits }) : ''].filter(Boolean).join(' ');
    certBox.replaceChildren(
      Number.isFinite(days) && days <= 30 ? h('p', { class: 'note note-warn', text: t('sec.expiring', { n: days }) }) : '',
      dl([
        [t('sec.subject'), c.subject || '—'],
        [t('sec.issuer'), c.issuer || '—'],
        [t('sec.validFrom'), timestamp(c.not_before)],
        [t('sec.validTo'), Number.isFinite(days) ? `${timestamp(c.not_after)} (${t('sec.daysLeft', { n: days })})` : timestamp(c.not_after)],
        [t('sec.key'), key || '—', { id: 'cert-key' }],
        [t('sec.sig'), c.signature_algorithm || c.signature || '—'],
        [t('sec.selfSigned'), c.self_signed === undefined ? '—' : c.self_signed ? t('common.yes') : t('common.no')],
        [t('sec.sha256'), c.sha256_fingerprint || '—', { class: 'mono wrap' }],
        [t('sec.sans'), Array.isArray(c.sans) ? c.sans.join(', ') : c.sans || '—'],
      ]),
    );
  };
  const loadCert = () => api.certificate().then(showCert).catch((err) => {
    certBox.replaceChildren(h('p', { class: 'note', text: err.status === 404 ? t('sec.certUnavailable') : ctx.errorText(err) }));
  });
  reload.addEventListener('click', async () => {
    try {
      showCert(await busy(reload, () => api.reloadCertificate()));
      loadCert();
      ctx.notify(t('sec.reloaded'));
    } catch { /* shown */ }
  });
  loadCert();

  root.append(configForm('Web', ctx, { titleKey: 'sec.web', introKey: 'sec.webNote' }));
}

/** The program's version: GET /status → version, else the OpenAPI document's info.version. */
async function programVersion() {
  try {
    const st = await api.status();
    if (st && typeof st.version === 'string' && st.version) return st.version;
  } catch { /* try the next source */ }
  try {
    const doc = await api.openapi();
    const v = doc && doc.info && doc.info.version;
    if (typeof v === 'string' && v) return v;
  } catch { /* unknown */ }
  return '';
}

export function renderAbout(root) {
  root.append(pageHeader('about.title'));
  const version = h('dd', { id: 'about-version', class: 'mono', text: t('common.loading') });
  const facts = dl([
    [t('about.ui'), t('about.uiText')],
    [t('about.api'), '/api/v1'],
    [t('about.browser'), navigator.userAgent],
  ]);
  facts.prepend(h('dt', { text: t('about.version') }), version);
  root.append(section('about.product', [h('p', { text: t('about.text') }), facts]));
  root.append(section('about.security', [h('ul', { class: 'bullets' }, ['about.s1', 'about.s2', 'about.s3', 'about.s4', 'about.s5'].map((k) => h('li', { text: t(k) })))]));
  programVersion().then((v) => {
    version.textContent = v ? `upsguard ${v}` : t('about.versionUnknown');
    version.dataset.version = v;
  });
}
