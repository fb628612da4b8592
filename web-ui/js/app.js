// Shell: language, navigation, hash routing, session handling, notices.
import * as api from './api.js';
import { h, clear } from './dom.js';
import { t, tOr, has, getLang, setLang, onLangChange } from './i18n.js';
import * as auth from './pages/auth.js';
import * as statusPage from './pages/status.js';
import * as logs from './pages/logs.js';
import * as settings from './pages/settings.js';
import * as system from './pages/system.js';

// Route → page. `auth: false` pages are shown without a session.
const ROUTES = {
  login: { render: auth.renderLogin, title: 'nav.login', auth: false },
  setup: { render: auth.renderSetup, title: 'nav.setup', auth: false },
  status: { render: statusPage.render, title: 'nav.status', nav: true },
  events: { render: logs.renderEvents, title: 'nav.events', nav: true },
  datalog: { render: logs.renderDatalog, title: 'nav.datalog', nav: true },
  shutdown: { render: settings.renderShutdown, title: 'nav.shutdown', nav: true },
  eventcfg: { render: settings.renderEventConfig, title: 'nav.eventcfg', nav: true },
  schedules: { render: settings.renderSchedules, title: 'nav.schedules', nav: true },
  ups: { render: settings.renderUps, title: 'nav.ups', nav: true },
  diagnostics: { render: system.renderDiagnostics, title: 'nav.diagnostics', nav: true },
  network: { render: settings.renderNetwork, title: 'nav.network', nav: true },
  notifications: { render: system.renderNotifications, title: 'nav.notifications', nav: true },
  security: { render: system.renderSecurity, title: 'nav.security', nav: true },
  about: { render: system.renderAbout, title: 'nav.about', nav: true },
};

const state = { user: null, cleanup: null, route: '', loginReason: '', setupNeeded: false };

const $ = (id) => document.getElementById(id);

// --- notices ----------------------------------------------------------------------------
let noticeTimer = 0;
export function notify(message) {
  const el = $('notice');
  el.textContent = message;
  el.classList.add('shown');
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    el.classList.remove('shown');
    el.textContent = '';
  }, 6000);
}

export function showError(message) {
  const el = $('alert');
  clear(el);
  el.append(
    h('span', { text: message }),
    h('button', {
      type: 'button',
      class: 'btn btn-quiet btn-small',
      text: t('common.dismiss'),
      onclick: () => hideError(),
    }),
  );
  el.hidden = false;
}

export function hideError() {
  const el = $('alert');
  el.hidden = true;
  clear(el);
}

export function errorText(err) {
  if (!err) return t('err.unknown');
  if (err.status === 0) return t('err.network');
  if (err.status === 403) return t('err.forbidden', { msg: err.message });
  if (err.status === 404) return t('err.notAvailable');
  if (err.status === 429) return t('err.tooMany');
  return t('err.server', { msg: err.message });
}

api.configure({
  unauthorized: () => {
    state.user = null;
    state.loginReason = 'expired';
    go('login');
  },
  error: (err) => showError(errorText(err)),
});

// --- problems banner ----------------------------------------------------------------------
// GET /status → problems: [{kind, key, message}] (English messages from the server). Shown on
// every page while the list is non-empty; any page's /status answer updates it, and a slow
// background poll keeps it current on pages that do not poll.
const PROBLEM_POLL_MS = 15000;
let problems = [];
let problemsDrawn = '';
let problemTimer = 0;

function drawProblems() {
  const el = $('problems');
  const list = state.user ? problems : [];
  const key = `${getLang()}|${JSON.stringify(list)}`;
  if (key === problemsDrawn) return;
  problemsDrawn = key;
  clear(el);
  el.hidden = list.length === 0;
  if (list.length === 0) return;
  el.append(
    h('h2', { id: 'problems-h', text: t('problems.title') }),
    h('ul', null, list.map((p) => {
      const kind = typeof p.kind === 'string' ? p.kind : '';
      return h('li', { 'data-kind': kind }, [
        h('strong', { class: 'problem-title', text: has(`problems.kind.${kind}`) ? t(`problems.kind.${kind}`) : tOr('problems.kind.other', kind) }),
        typeof p.message === 'string' && p.message ? h('span', { class: 'problem-msg', lang: 'en', text: p.message }) : null,
        typeof p.key === 'string' && p.key ? h('span', { class: 'problem-key mono', text: t('problems.key', { key: p.key }) }) : null,
      ]);
    })),
  );
}

let lastStatus = null;
function drawTopBadge() {
  const top = $('top-status');
  if (!lastStatus || !state.user) {
    top.hidden = true;
    return;
  }
  const c = statusPage.classify(lastStatus);
  top.hidden = false;
  top.className = `brand-badge badge-${c.kind}`;
  top.textContent = c.tokens.join(' ') || '?';
  top.title = t(c.key);
}

api.onStatus((st) => {
  lastStatus = st;
  problems = Array.isArray(st && st.problems) ? st.problems.filter((p) => p && typeof p === 'object') : [];
  drawProblems();
  drawTopBadge();
});

/** Refresh /status (in the background: not activity) unless a page did so recently. */
function refreshProblems(maxAge) {
  if (state.user && api.statusAge() > maxAge) api.status(true).catch(() => {});
}

function problemPoll() {
  // The dashboard polls every 2 s anyway; other pages get a background refresh.
  refreshProblems(PROBLEM_POLL_MS - 3000);
  problemTimer = setTimeout(problemPoll, PROBLEM_POLL_MS);
}

// --- navigation -------------------------------------------------------------------------
function buildNav() {
  const list = clear($('nav-list'));
  for (const [name, r] of Object.entries(ROUTES)) {
    if (!r.nav) continue;
    const a = h('a', { href: `#/${name}`, text: t(r.title), 'data-route': name });
    if (name === state.route) a.setAttribute('aria-current', 'page');
    list.append(h('li', null, a));
  }
}

function chrome() {
  const authed = !!state.user;
  $('nav').hidden = !authed;
  $('nav-toggle').hidden = !authed;
  $('logout').hidden = !authed;
  $('who').hidden = !authed;
  $('who').textContent = authed ? t('common.signedInAs', { user: state.user.username || '' }) : '';
  $('logout').textContent = t('common.logout');
  $('nav-toggle').textContent = t('common.menu');
  $('skip-link').textContent = t('common.skip');
  $('lang-label').textContent = t('common.language');
  $('nav').setAttribute('aria-label', t('common.mainNav'));
  document.body.classList.toggle('signed-in', authed);
  buildNav();
  drawProblems();
  drawTopBadge();
}

export function go(route) {
  const target = `#/${route}`;
  if (location.hash === target) render();
  else location.hash = target;
}

function currentRoute() {
  const name = (location.hash.replace(/^#\/?/, '').split(/[/?]/)[0] || '').toLowerCase();
  return Object.hasOwn(ROUTES, name) ? name : '';
}

let renderSeq = 0;
async function render() {
  const seq = ++renderSeq;
  let name = currentRoute();
  if (!state.user && (!name || ROUTES[name].auth !== false)) name = 'login';
  if (state.user && (name === 'login' || name === 'setup' || !name)) name = 'status';
  if (!state.user && name === 'setup' && !state.setupNeeded) name = 'login';
  if (!state.user && name === 'login' && state.setupNeeded) name = 'setup';
  if (state.cleanup) {
    try {
      state.cleanup();
    } catch {
      /* a page's cleanup must not stop navigation */
    }
    state.cleanup = null;
  }
  state.route = name;
  hideError();
  const r = ROUTES[name];
  document.title = `${t(r.title)} — upsguard`;
  chrome();
  closeNav();
  const page = clear($('page'));
  const ctx = {
    go,
    notify,
    showError,
    errorText,
    user: state.user,
    signedIn,
    reason: state.loginReason,
    setupDone: () => {
      state.setupNeeded = false;
    },
  };
  state.loginReason = '';
  if (name !== 'status') refreshProblems(5000);
  if (!problemTimer) problemTimer = setTimeout(problemPoll, PROBLEM_POLL_MS);
  const cleanup = await r.render(page, ctx);
  if (seq === renderSeq) state.cleanup = typeof cleanup === 'function' ? cleanup : null;
  else if (typeof cleanup === 'function') cleanup();
}

// --- idle logout ----------------------------------------------------------------------------
// The server enforces the idle timeout: dashboard refreshes are sent as background requests
// (api.status(true)), so an unattended page gets a 401 and lands on the login page.

/** Called by the login and setup pages once a session exists. */
async function signedIn() {
  try {
    state.user = await api.session();
  } catch {
    state.user = { username: '' };
  }
  go('status');
}

function closeNav() {
  document.body.classList.remove('nav-open');
  $('nav-toggle').setAttribute('aria-expanded', 'false');
}

function focusMain() {
  // Move focus into the new page (for screen readers and keyboard users) unless the page
  // already put it somewhere useful, e.g. the first field of a form.
  if ($('page').contains(document.activeElement)) return;
  const heading = $('page').querySelector('h1');
  if (heading) {
    heading.setAttribute('tabindex', '-1');
    heading.focus({ preventScroll: false });
  }
}

// --- start --------------------------------------------------------------------------------
async function start() {
  const sel = $('lang-select');
  sel.value = getLang();
  sel.addEventListener('change', () => setLang(sel.value));
  onLangChange(() => {
    sel.value = getLang();
    render();
  });
  $('logout').addEventListener('click', async () => {
    try {
      await api.logout();
    } catch {
      /* the session is gone either way */
    }
    state.user = null;
    state.loginReason = 'loggedOut';
    go('login');
  });
  $('nav-toggle').addEventListener('click', () => {
    const open = !document.body.classList.contains('nav-open');
    document.body.classList.toggle('nav-open', open);
    $('nav-toggle').setAttribute('aria-expanded', String(open));
  });
  $('skip-link').addEventListener('click', (e) => {
    e.preventDefault();
    $('main').focus();
  });
  window.addEventListener('hashchange', async () => {
    await render();
    focusMain();
  });

  try {
    const s = await api.setupNeeded();
    state.setupNeeded = !!(s && s.needed);
    if (state.setupNeeded) {
      location.hash = '#/setup';
      await render();
      return;
    }
  } catch {
    /* fall through to the session check */
  }
  try {
    state.user = await api.session();
  } catch {
    state.user = null;
  }
  await render();
}

start();
