// Diagnostics, notifications (placeholder), security, about.
import * as api from '../api.js';
import { h } from '../dom.js';
import { t } from '../i18n.js';
import { pageHeader, section, field, fieldError, busy, note, dl, loading, timestamp } from '../ui.js';
import { policyChecks } from './auth.js';
import { configForm } from './settings.js';

export function renderDiagnostics(root, ctx) {
  root.append(pageHeader('diag.title', 'diag.intro'));
  const result = h('div', { id: 'selftest-result' }, loading());
  const run = h('button', { type: 'button', class: 'btn btn-primary', text: t('diag.runSelfTest'), id: 'selftest-run' });
  async function showLast() {
    try {
      const st = await api.status();
      result.replaceChildren(dl([
        [t('status.selfTest'), st.self_test || '—'],
        [t('status.lastTransfer'), st.last_transfer || '—'],
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

export function renderNotifications(root) {
  root.append(pageHeader('notify.title'));
  root.append(h('p', { class: 'note note-warn', id: 'notify-unavailable', role: 'note', text: t('notify.unavailable') }));
  const fs = h('fieldset', { disabled: true }, [
    h('legend', { text: t('notify.email') }),
    field(t('notify.smtpHost'), h('input', { type: 'text', autocomplete: 'off' })),
    field(t('notify.smtpPort'), h('input', { type: 'number', value: 587 })),
    field(t('notify.from'), h('input', { type: 'email' })),
    field(t('notify.to'), h('input', { type: 'email' })),
  ]);
  const fs2 = h('fieldset', { disabled: true }, [
    h('legend', { text: t('notify.webhook') }),
    field(t('notify.url'), h('input', { type: 'url' })),
  ]);
  root.append(h('form', { class: 'card', 'aria-describedby': 'notify-unavailable' }, [fs, fs2,
    h('div', { class: 'actions' }, [h('button', { type: 'button', class: 'btn', disabled: true, text: t('common.save') })])]));
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

export function renderAbout(root) {
  root.append(pageHeader('about.title'));
  root.append(section('about.product', [
    h('p', { text: t('about.text') }),
    dl([
      [t('about.ui'), 'web-ui (static, no external resources)'],
      [t('about.api'), '/api/v1'],
      [t('about.browser'), navigator.userAgent],
    ]),
  ]));
  root.append(section('about.security', [h('ul', { class: 'bullets' }, ['about.s1', 'about.s2', 'about.s3', 'about.s4', 'about.s5'].map((k) => h('li', { text: t(k) })))]));
}
