// Login and first-run setup.
import * as api from '../api.js';
import { h } from '../dom.js';
import { t } from '../i18n.js';
import { field, fieldError, busy } from '../ui.js';

const SPECIALS = '#?!@$%^&*-';

/** The policy of product.md §8.4, checked as the user types (the server decides). */
export function policyChecks(username, password) {
  const ascii = (s) => /^[\x21-\x7e]*$/.test(s);
  return [
    ['policy.userLen', username.length >= 6 && username.length <= 128],
    ['policy.userAscii', username.length > 0 && ascii(username)],
    ['policy.passLen', password.length >= 8 && password.length <= 128],
    ['policy.passUpper', /[A-Z]/.test(password)],
    ['policy.passLower', /[a-z]/.test(password)],
    ['policy.passDigit', /[0-9]/.test(password) || [...password].some((c) => SPECIALS.includes(c))],
    ['policy.passNoUser', password.length > 0 && (username === '' || !password.toLowerCase().includes(username.toLowerCase()))],
    ['policy.passAscii', password.length > 0 && ascii(password)],
  ];
}

function policyList(username, password) {
  const list = h('ul', { class: 'policy', id: 'policy-rules' });
  const update = () => {
    list.replaceChildren(
      ...policyChecks(username.value, password.value).map(([key, ok]) =>
        h('li', { class: ok ? 'ok' : 'todo' }, [
          h('span', { class: 'mark', 'aria-hidden': 'true', text: ok ? '✓' : '•' }),
          h('span', { text: t(key) }),
          h('span', { class: 'sr-only', text: ok ? t('policy.met') : t('policy.notMet') }),
        ]),
      ),
    );
  };
  username.addEventListener('input', update);
  password.addEventListener('input', update);
  update();
  return list;
}

export function renderLogin(root, ctx) {
  const user = h('input', { type: 'text', name: 'username', autocomplete: 'username', required: true, maxlength: 128, autocapitalize: 'none', spellcheck: 'false' });
  const pass = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true, maxlength: 128 });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', text: t('login.submit') });
  const msg = h('div', { class: 'form-message', role: 'alert', id: 'login-message' });
  const extra = h('div', { class: 'form-extra' });
  let lockTimer = 0;

  const say = (text, cls = 'error') => {
    msg.className = `form-message ${cls}`;
    msg.textContent = text;
  };

  async function attempt(takeover) {
    extra.replaceChildren();
    clearInterval(lockTimer);
    say('', '');
    try {
      await busy(submit, () => api.login(user.value, pass.value, takeover));
      pass.value = '';
      await ctx.signedIn();
    } catch (err) {
      if (err.status === 401) {
        say(t('login.invalid'));
        pass.value = '';
        pass.focus();
      } else if (err.status === 409) {
        say(t('login.busy'), 'warn');
        const take = h('button', {
          type: 'button',
          class: 'btn btn-warn',
          id: 'takeover',
          text: t('login.takeover'),
          onclick: () => attempt(true),
        });
        extra.replaceChildren(h('p', { class: 'hint', text: t('login.takeoverHint') }), take);
        take.focus();
      } else if (err.status === 423) {
        let left = Number(err.body.retry_after_s) || 120;
        const tick = () => {
          say(t('login.locked', { s: left }));
          submit.disabled = left > 0;
          if (left <= 0) {
            clearInterval(lockTimer);
            say(t('login.unlocked'), 'info');
          }
          left -= 1;
        };
        tick();
        lockTimer = setInterval(tick, 1000);
      } else if (err.status === 429) {
        say(t('login.throttled'));
      } else {
        say(ctx.errorText(err));
      }
    }
  }

  const form = h('form', { class: 'card auth-card', novalidate: false, 'aria-labelledby': 'login-title' }, [
    h('h1', { id: 'login-title', text: t('login.title') }),
    h('p', { class: 'intro', text: t('login.intro') }),
    field(t('login.username'), user),
    field(t('login.password'), pass),
    msg,
    h('div', { class: 'actions' }, [submit]),
    extra,
  ]);
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    attempt(false);
  });
  root.append(form);
  if (ctx.reason === 'expired') say(t('login.expired'), 'info');
  if (ctx.reason === 'loggedOut') say(t('login.loggedOut'), 'info');
  if (ctx.reason === 'setupDone') say(t('setup.done'), 'info');
  user.focus();
  return () => clearInterval(lockTimer);
}

export function renderSetup(root, ctx) {
  const token = h('input', { type: 'text', name: 'token', autocomplete: 'off', required: true, spellcheck: 'false', autocapitalize: 'none', class: 'mono' });
  const user = h('input', { type: 'text', name: 'username', autocomplete: 'username', required: true, minlength: 6, maxlength: 128, autocapitalize: 'none', spellcheck: 'false' });
  const pass = h('input', { type: 'password', name: 'new-password', autocomplete: 'new-password', required: true, minlength: 8, maxlength: 128 });
  const pass2 = h('input', { type: 'password', name: 'confirm-password', autocomplete: 'new-password', required: true, maxlength: 128 });
  const submit = h('button', { type: 'submit', class: 'btn btn-primary', text: t('setup.submit') });
  const msg = h('div', { class: 'form-message', role: 'alert', id: 'setup-message' });
  const rules = policyList(user, pass);

  const form = h('form', { class: 'card auth-card', 'aria-labelledby': 'setup-title' }, [
    h('h1', { id: 'setup-title', text: t('setup.title') }),
    h('p', { class: 'intro', text: t('setup.intro') }),
    field(t('setup.token'), token, t('setup.tokenHint')),
    field(t('login.username'), user),
    field(t('setup.password'), pass),
    field(t('setup.confirm'), pass2),
    h('h2', { class: 'small-heading', text: t('setup.rules') }),
    rules,
    msg,
    h('div', { class: 'actions' }, [submit]),
  ]);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    msg.textContent = '';
    fieldError(pass2, '');
    if (pass.value !== pass2.value) {
      fieldError(pass2, t('setup.mismatch'));
      pass2.focus();
      return;
    }
    try {
      await busy(submit, () => api.setup(token.value.trim(), user.value, pass.value));
    } catch (err) {
      msg.className = 'form-message error';
      msg.textContent = err.status === 401 || err.status === 403 ? t('setup.badToken', { msg: err.message }) : ctx.errorText(err);
      return;
    }
    // The account exists now; sign in with it straight away.
    ctx.setupDone();
    try {
      await api.login(user.value, pass.value);
      await ctx.signedIn();
    } catch {
      ctx.go('login');
    }
  });
  root.append(form);
  token.focus();
}
