// The tradeops operator console: one ES module calling the API (DESIGN §5)
// with fetch(). Rules kept throughout:
//  - the token lives in this module's memory only (never localStorage,
//    sessionStorage or a cookie): a reload logs out;
//  - every value from the API reaches the page as text (textContent, text
//    nodes, input values), never as HTML; the CSP's Trusted Types make an
//    HTML sink throw anyway;
//  - a 401 from any call returns to the login view; errors show the API's
//    code and message; long work shows progress.
import qrcode from './qrcode.mjs';

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------- session

let session = null; // {token, expiresAt (ms), me}
let expiryTimer = 0;

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// api calls the API. body: {form} (URL-encoded) or {json}. A GET answered
// 503 with Retry-After (a projection catching up, the database restarting)
// is asked again for up to 10 s.
async function api(method, path, {form, json, headers = {}, auth = true} = {}) {
  const init = {method, headers: {...headers}, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer'};
  if (auth) {
    if (!session) throw new ApiError(401, 'unauthorized', 'log in first');
    init.headers.Authorization = 'Bearer ' + session.token;
  }
  if (form) {
    init.headers['Content-Type'] = 'application/x-www-form-urlencoded';
    init.body = new URLSearchParams(form).toString();
  } else if (json !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(json);
  }
  const deadline = Date.now() + 10000;
  for (;;) {
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, 'network', 'the server could not be reached (' + e.message + ')');
    }
    const retry = Number(resp.headers.get('Retry-After'));
    if (resp.status === 503 && method === 'GET' && retry > 0 && Date.now() + retry * 1000 < deadline) {
      progressText('waiting for the server (' + path + ')…');
      await new Promise((r) => setTimeout(r, retry * 1000));
      continue;
    }
    const type = resp.headers.get('Content-Type') || '';
    const body = resp.status === 204 ? null : type.startsWith('application/json') ? await resp.json() : await resp.text();
    if (resp.ok) return body;
    const err = body && body.error ? body.error : {code: 'http_' + resp.status, message: resp.statusText};
    const apiErr = new ApiError(resp.status, err.code, err.message);
    apiErr.body = body;
    if (resp.status === 401 && auth) {
      endSession('Your session ended (' + err.code + ': ' + err.message + '). Log in again.');
    }
    throw apiErr;
  }
}

function startSession(token, expiresIn) {
  session = {token, expiresAt: Date.now() + expiresIn * 1000, me: null};
  clearInterval(expiryTimer);
  expiryTimer = setInterval(showExpiry, 1000);
}

function endSession(notice) {
  session = null;
  clearInterval(expiryTimer);
  // Nothing the last user saw stays in the page.
  for (const tbody of document.querySelectorAll('tbody')) tbody.replaceChildren();
  for (const id of ['twofa-url', 'twofa-secret', 'audit-count', 'admin-audit-count']) $(id).textContent = '';
  for (const id of ['audit-more', 'audit-csv', 'admin-audit-more', 'admin-audit-csv']) $(id).disabled = true;
  const qr = $('twofa-qr');
  qr.getContext('2d').clearRect(0, 0, qr.width, qr.height);
  $('order-result').hidden = true;
  $('session').hidden = true;
  $('nav').hidden = true;
  showView('login');
  if (notice) showNotice(notice);
}

function showExpiry() {
  if (!session) return;
  const left = Math.round((session.expiresAt - Date.now()) / 1000);
  if (left <= 0) {
    endSession('Your session expired. Log in again.');
    return;
  }
  $('session-expiry').textContent = new Date(session.expiresAt).toLocaleTimeString();
  $('session-expiry').dateTime = new Date(session.expiresAt).toISOString();
  $('session-left').textContent = Math.floor(left / 60) + ' min ' + String(left % 60).padStart(2, '0') + ' s left';
}

// ---------------------------------------------------------------- feedback

let busyCount = 0;

function progressText(text) {
  $('progress-text').textContent = text;
}

// busy runs fn while showing progress and disabling the control that
// started it; errors are shown, not thrown.
async function busy(label, control, fn) {
  clearError();
  busyCount++;
  $('progress').hidden = false;
  progressText(label);
  document.body.setAttribute('aria-busy', 'true');
  if (control) control.disabled = true;
  try {
    return await fn();
  } catch (e) {
    showError(e);
  } finally {
    if (control) control.disabled = false;
    if (--busyCount === 0) {
      $('progress').hidden = true;
      document.body.removeAttribute('aria-busy');
    }
  }
}

function showError(e) {
  if (!(e instanceof ApiError)) {
    // A bug in the console, not an answer of the API: also to the browser's
    // console, where the tests (and developers) look.
    console.error(e);
    e = new ApiError(0, 'console_error', String(e && e.message ? e.message : e));
  }
  $('error-code').textContent = e.code + (e.status ? ' (HTTP ' + e.status + ')' : '') + ':';
  $('error-message').textContent = e.message;
  $('error').hidden = false;
}

function clearError() {
  $('error').hidden = true;
  $('notice').hidden = true;
}

function showNotice(text) {
  $('notice').textContent = text;
  $('notice').hidden = false;
}

// ---------------------------------------------------------------- DOM helpers

// el builds an element; children are nodes or strings (inserted as text).
function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'dataset') Object.assign(e.dataset, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(c == null ? '' : String(c)));
  return e;
}

function fillRows(tbody, rows) {
  tbody.replaceChildren(...rows.map((cells) => el('tr', {}, ...cells.map((c) => (c instanceof Node && c.tagName === 'TD' ? c : el('td', {}, c))))));
}

function facts(dl, pairs) {
  dl.replaceChildren(...pairs.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
}

const utcDay = (d) => d.toISOString().slice(0, 10);
const fmtTime = (iso) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, '') : '');

// ---------------------------------------------------------------- views

const views = ['login', 'account', 'secrets', 'execution', 'audit', 'risk', 'admin-audit', 'projections'];
const adminViews = new Set(['risk', 'admin-audit', 'projections']);
const loaders = {};

function showView(name) {
  if (adminViews.has(name) && !(session && session.me && session.me.role === 'admin')) name = 'account';
  for (const v of views) $('view-' + v).hidden = v !== name;
  for (const b of document.querySelectorAll('#nav button')) {
    if (b.dataset.view === name) b.setAttribute('aria-current', 'page');
    else b.removeAttribute('aria-current');
  }
  const heading = $('view-' + name).querySelector('h2');
  if (heading) heading.focus();
  if (loaders[name]) loaders[name]();
}

$('nav').addEventListener('click', (ev) => {
  const b = ev.target.closest('button[data-view]');
  if (b) {
    clearError();
    showView(b.dataset.view);
  }
});

$('error-close').addEventListener('click', clearError);

// ---------------------------------------------------------------- login

$('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const form = {username: $('login-username').value, password: $('login-password').value};
  if ($('login-otp').value) form.otp = $('login-otp').value;
  performance.clearMarks();
  performance.mark('console:login-submit');
  busy('Logging in…', ev.submitter, async () => {
    let tok;
    try {
      tok = await api('POST', '/auth/login', {form, auth: false});
    } catch (e) {
      if (e.code === 'otp_required' || e.code === 'otp_invalid') $('login-otp').focus();
      throw e;
    }
    performance.mark('console:login-answered');
    $('login-password').value = '';
    $('login-otp').value = '';
    startSession(tok.access_token, tok.expires_in);
    await loadMe();
    $('session').hidden = false;
    $('nav').hidden = false;
    showExpiry();
    showView('account');
    // Painted: the frame after the one that rendered the account view.
    requestAnimationFrame(() => setTimeout(() => performance.mark('console:first-paint'), 0));
  });
});

$('logout').addEventListener('click', (ev) => {
  busy('Logging out…', ev.target, async () => {
    try {
      await api('POST', '/auth/logout');
    } finally {
      endSession('You are logged out.');
    }
  });
});

// ---------------------------------------------------------------- account

async function loadMe() {
  const me = await api('GET', '/users/me');
  session.me = me;
  $('session-user').textContent = me.email + ' (' + me.role + ')';
  $('me-email').textContent = me.email;
  $('me-role').textContent = me.role;
  $('me-profile').textContent = me.risk_profile;
  $('me-2fa').textContent = me.totp_enabled ? 'enabled' : 'not enabled';
  $('twofa-off').hidden = me.totp_enabled;
  $('twofa-enrol').hidden = true;
  $('twofa-disable-form').hidden = !me.totp_enabled;
  for (const b of document.querySelectorAll('#nav [data-admin]')) b.hidden = me.role !== 'admin';
}

loaders.account = () => busy('Loading your account…', null, loadMe);

$('twofa-setup').addEventListener('click', (ev) => {
  busy('Creating a 2FA secret…', ev.target, async () => {
    const s = await api('POST', '/auth/2fa/setup');
    $('twofa-url').textContent = s.otpauth_url;
    $('twofa-secret').textContent = s.secret;
    drawQR($('twofa-qr'), s.otpauth_url);
    $('twofa-enrol').hidden = false;
    $('twofa-enable-otp').focus();
  });
});

// drawQR renders text as a QR code on canvas, locally (no image service).
function drawQR(canvas, text) {
  const qr = qrcode(0, 'M');
  qr.addData(text);
  qr.make();
  const n = qr.getModuleCount();
  const quiet = 4;
  const cell = Math.max(2, Math.floor(canvas.width / (n + 2 * quiet)));
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = '#000';
  const off = Math.floor((canvas.width - n * cell) / 2);
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      if (qr.isDark(r, c)) ctx.fillRect(off + c * cell, off + r * cell, cell, cell);
    }
  }
}

// Enabling or disabling 2FA revokes every token issued before (DESIGN §4):
// the console says so and returns to the login view.
function confirmTwoFactor(formId, inputId, path, done) {
  $(formId).addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy('Checking the code…', ev.submitter, async () => {
      await api('POST', path, {json: {otp: $(inputId).value}});
      $(inputId).value = '';
      endSession(done);
    });
  });
}
confirmTwoFactor('twofa-enable-form', 'twofa-enable-otp', '/auth/2fa/enable',
  'Two-factor authentication is enabled. Your earlier sessions ended: log in again with a code from the app.');
confirmTwoFactor('twofa-disable-form', 'twofa-disable-otp', '/auth/2fa/disable',
  'Two-factor authentication is disabled. Your earlier sessions ended: log in again.');

// ---------------------------------------------------------------- secrets

async function loadSecrets() {
  const {secrets} = await api('GET', '/users/exchange-secrets');
  fillRows($('secrets-table').tBodies[0], secrets.map((s) => {
    const action = el('td');
    if (s.status === 'configured') {
      action.append(el('button', {type: 'button', dataset: {deleteExchange: s.exchange}}, 'Delete ' + s.exchange + ' secret'));
    }
    return [el('td', {dataset: {exchange: s.exchange}}, s.exchange), s.status, s.api_key_hint || '', s.key_id || '', fmtTime(s.updated_at), action];
  }));
}

loaders.secrets = () => busy('Loading your exchange secrets…', null, loadSecrets);

$('secrets-table').addEventListener('click', (ev) => {
  const b = ev.target.closest('button[data-delete-exchange]');
  if (!b) return;
  const exchange = b.dataset.deleteExchange;
  busy('Deleting the ' + exchange + ' secret…', b, async () => {
    await api('DELETE', '/users/exchange-secrets/' + encodeURIComponent(exchange));
    await loadSecrets();
  });
});

function secretForm(formId, exchange, body, inputs) {
  $(formId).addEventListener('submit', (ev) => {
    ev.preventDefault();
    busy('Saving the ' + exchange + ' secret…', ev.submitter, async () => {
      await api('PUT', '/users/exchange-secrets/' + exchange, {json: body()});
      for (const id of inputs) $(id).value = '';
      await loadSecrets();
      showNotice(exchange + ' secret saved.');
    });
  });
}
secretForm('binance-form', 'BINANCE', () => ({api_key: $('binance-key').value, api_secret: $('binance-secret').value}), ['binance-key', 'binance-secret']);
secretForm('ibkr-form', 'IBKR', () => {
  const b = {account_id: $('ibkr-account').value};
  if ($('ibkr-key').value) b.api_key = $('ibkr-key').value;
  return b;
}, ['ibkr-account', 'ibkr-key']);

// ---------------------------------------------------------------- execution

function order() {
  const o = {symbol: $('order-symbol').value.trim(), side: $('order-side').value, qty: $('order-qty').value.trim()};
  if ($('order-price').value.trim()) o.price = $('order-price').value.trim();
  return o;
}

function showChecks(checks) {
  $('checks-table').hidden = !checks;
  fillRows($('checks-table').tBodies[0], (checks || []).map((c) => [
    c.name, el('td', {className: c.passed ? 'ok' : 'bad'}, c.passed ? 'yes' : 'no'), c.limit, c.value, c.code || '']));
}

function showOrderResult(title, pairs, checks, answer) {
  $('order-result-title').textContent = title;
  facts($('order-facts'), pairs);
  showChecks(checks);
  $('order-answer').hidden = answer === undefined;
  $('order-answer').textContent = answer === undefined ? '' : JSON.stringify(answer, null, 2);
  $('order-result').hidden = false;
}

$('order-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const body = {exchange: $('order-exchange').value, ...order()};
  busy('Dry run: checking the order against your risk profile…', ev.submitter, async () => {
    const r = await api('POST', '/ops/execution/prepare', {json: body, headers: {'Idempotency-Key': crypto.randomUUID()}});
    showOrderResult('Dry run: ' + r.decision, [
      ['Decision', r.decision], ['Risk profile', r.risk_profile], ['Execution', r.execution_id],
      ['Order', r.side + ' ' + r.qty + ' ' + r.symbol + ' on ' + r.exchange],
      ['Reference price', r.reference_price], ['Notional', r.notional],
      ['Shadow decision', r.shadow.profile + ': ' + r.shadow.decision],
    ], r.checks);
  });
});

function testOrder(buttonId, exchange, path) {
  $(buttonId).addEventListener('click', (ev) => {
    if (!$('order-form').reportValidity()) return;
    busy(exchange + ' test order: waiting for the exchange…', ev.target, async () => {
      try {
        const r = await api('POST', path, {json: order(), headers: {'Idempotency-Key': crypto.randomUUID()}});
        showOrderResult(exchange + ' test order: ' + r.status, [
          ['Status', r.status], ['Mode', r.mode], ['Execution', r.execution_id],
          ['Validated', String(r.validated)], ['Sent to the matching engine', String(r.sent_to_matching_engine)],
        ], null, r.exchange_response || r.preview);
      } catch (e) {
        // The exchange's (or the risk check's) answer is shown beside the error.
        if (e.body) showOrderResult(exchange + ' test order: ' + (e.body.decision || e.body.status || 'error'),
          [['Code', e.code], ['Message', e.message]], e.body.checks, e.body);
        throw e;
      }
    });
  });
}
testOrder('order-binance', 'Binance', '/ops/execution/binance/test-order');
testOrder('order-ibkr', 'IBKR', '/ops/execution/ibkr/test-order');

// ---------------------------------------------------------------- audit

const eventTypes = ['auth.login.success', 'auth.login.failure', 'auth.logout', 'auth.2fa.enabled', 'auth.2fa.disabled',
  'user.created', 'user.role.changed', 'user.risk_profile.assigned', 'secrets.exchange.configured', 'secrets.exchange.deleted',
  'execution.prepare', 'execution.binance.test_order.success', 'execution.binance.test_order.error',
  'execution.ibkr.test_order.success', 'execution.ibkr.test_order.error', 'security.key_rotation.reencrypt',
  'security.key_rotation.prune', 'security.key_rotation.rollback', 'security.key_rotation.unfrozen', 'audit.reseal'];
$('event-types').replaceChildren(...eventTypes.map((t) => el('option', {value: t})));

// auditView drives one audit timeline: the caller's (/ops/audit/me) or,
// for admins, everyone's (/ops/audit, with a user filter). The date range
// goes to the API as since= (the first day's start, UTC); the API pages
// newest first by cursor, so events after "to" are skipped here.
function auditView(prefix, path, withUser) {
  const view = $('audit-template').content.cloneNode(true);
  for (const e of view.querySelectorAll('[id]')) e.id = e.id.replace('PREFIX', prefix);
  for (const l of view.querySelectorAll('label')) l.htmlFor = l.htmlFor.replace('PREFIX', prefix);
  if (!withUser) for (const e of view.querySelectorAll('[data-admin-only]')) e.remove();
  document.querySelector(`[data-audit="${prefix}"]`).replaceWith(view);

  const state = {events: [], cursor: null, query: null};
  const tbody = $(prefix + '-table').tBodies[0];

  function render() {
    fillRows(tbody, state.events.map((e) => [
      el('td', {}, el('time', {dateTime: e.at}, fmtTime(e.at))), e.type,
      e.actor ? e.actor.email || e.actor.id : '', e.subject || '', el('td', {className: 'data'}, JSON.stringify(e.data))]));
    $(prefix + '-count').textContent = state.events.length + ' event' + (state.events.length === 1 ? '' : 's') + ' shown' +
      (state.cursor ? '; more to load' : '; that is all');
    $(prefix + '-more').disabled = !state.cursor;
    $(prefix + '-csv').disabled = state.events.length === 0;
  }

  async function loadPage() {
    const q = state.query;
    // Pages entirely after "to" show nothing: keep reading (at most 20
    // pages per click) until something is shown or the log ends.
    for (let pages = 0; pages < 20; pages++) {
      const params = new URLSearchParams({limit: q.limit});
      if (q.type) params.set('type', q.type);
      if (withUser && q.user) params.set('user', q.user);
      if (q.from) params.set('since', q.from + 'T00:00:00Z');
      if (state.cursor) params.set('before', state.cursor);
      progressText('Loading audit events (page ' + (pages + 1) + ')…');
      const page = await api('GET', path + '?' + params.toString());
      state.cursor = page.next_cursor;
      let shown = 0;
      for (const e of page.events) {
        const day = e.at.slice(0, 10);
        if (q.to && day > q.to) continue;
        state.events.push(e);
        shown++;
      }
      if (shown > 0 || !state.cursor) break;
    }
    render();
  }

  function readQuery() {
    const v = (id) => $(prefix + '-' + id).value.trim();
    return {type: v('type'), from: v('from'), to: v('to'), limit: v('limit'), user: withUser ? v('user') : ''};
  }

  function reload(control) {
    state.query = readQuery();
    if (state.query.from && state.query.to && state.query.from > state.query.to) {
      showError(new ApiError(0, 'invalid_range', '"from" must not be after "to"'));
      return Promise.resolve();
    }
    state.events = [];
    state.cursor = null;
    return busy('Loading audit events…', control, loadPage);
  }

  $(prefix + '-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    reload(ev.submitter);
  });
  $(prefix + '-more').addEventListener('click', (ev) => busy('Loading more audit events…', ev.target, loadPage));
  $(prefix + '-csv').addEventListener('click', () => downloadCSV(prefix + '-' + utcDay(new Date()) + '.csv', state.events));
  return () => reload(null);
}

loaders.audit = auditView('audit', '/ops/audit/me', false);
loaders['admin-audit'] = auditView('admin-audit', '/ops/audit', true);

// csvCell quotes a value, and defuses one a spreadsheet would run as a
// formula (a leading = + - @ tab or CR gets a leading apostrophe).
function csvCell(v) {
  let s = v == null ? '' : String(v);
  if (/^[=+\-@\t\r]/.test(s)) s = "'" + s;
  return '"' + s.replaceAll('"', '""') + '"';
}

function downloadCSV(name, events) {
  const header = ['at', 'type', 'actor_id', 'actor_email', 'subject', 'stream', 'id', 'data'];
  const lines = [header.join(',')].concat(events.map((e) => [e.at, e.type, e.actor ? e.actor.id : '', e.actor ? e.actor.email || '' : '',
    e.subject || '', e.stream, e.id, JSON.stringify(e.data)].map(csvCell).join(',')));
  const url = URL.createObjectURL(new Blob([lines.join('\r\n') + '\r\n'], {type: 'text/csv'}));
  const a = el('a', {href: url, download: name});
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// ---------------------------------------------------------------- risk (admin)

const profileColours = {model2: ['#1f6f43', '#c0392b'], loose: ['#5aa469', '#e67e73']};
let riskChart = null;

async function loadRisk() {
  const params = new URLSearchParams();
  if ($('risk-from').value) params.set('from', $('risk-from').value);
  if ($('risk-to').value) params.set('to', $('risk-to').value);
  const rep = await api('GET', '/ops/risk/daily-compare' + (params.size ? '?' + params : ''));
  $('risk-from').value = rep.from;
  $('risk-to').value = rep.to;
  const profiles = [...new Set(rep.days.flatMap((d) => Object.keys(d.profiles)))].sort();
  const rows = [];
  for (const d of rep.days) {
    for (const p of profiles) {
      const c = d.profiles[p];
      if (!c) continue;
      rows.push([d.date, p, c.prepares, c.accepted, c.rejected, c.divergent, c.notional_requested, c.notional_accepted,
        'Binance ' + c.test_orders.binance.ok + ' / ' + c.test_orders.binance.error + ', IBKR ' + c.test_orders.ibkr.ok + ' / ' + c.test_orders.ibkr.error,
        d.divergent_decisions]);
    }
  }
  fillRows($('risk-table').tBodies[0], rows);
  const datasets = [];
  for (const p of profiles) {
    const [accepted, rejected] = profileColours[p] || ['#555', '#999'];
    datasets.push({label: p + ' accepted', stack: p, order: 1, backgroundColor: accepted, data: rep.days.map((d) => (d.profiles[p] || {}).accepted || 0)});
    datasets.push({label: p + ' rejected', stack: p, order: 1, backgroundColor: rejected, data: rep.days.map((d) => (d.profiles[p] || {}).rejected || 0)});
  }
  // order 0: the line is drawn over the bars.
  datasets.push({type: 'line', label: 'divergent decisions', order: 0, borderColor: '#2c3e91', backgroundColor: '#2c3e91',
    data: rep.days.map((d) => d.divergent_decisions)});
  const data = {labels: rep.days.map((d) => d.date), datasets};
  if (riskChart) {
    riskChart.data = data;
    riskChart.update();
    return;
  }
  riskChart = new window.Chart($('risk-chart'), {
    type: 'bar', data,
    options: {
      animation: false, responsive: true, maintainAspectRatio: false,
      scales: {x: {stacked: true}, y: {stacked: true, beginAtZero: true, ticks: {precision: 0}}},
      plugins: {legend: {position: 'bottom'}},
    },
  });
}

// The kill switch sits above the comparison: while it is engaged, every
// order is rejected under both profiles.
function showKillSwitch(ks) {
  const since = ks.changed_at ? ' since ' + ks.changed_at + ' (' + ks.reason + ')' : '';
  $('killswitch-state').textContent = ks.engaged
    ? 'ENGAGED' + since + ': every order is rejected (RISK_KILL_SWITCH) and nothing is sent.'
    : 'Released' + since + ': orders are decided by their risk profile.';
  $('killswitch').classList.toggle('engaged', ks.engaged);
}

$('killswitch-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const engaged = ev.submitter.dataset.engaged === 'true';
  busy(engaged ? 'Engaging the kill switch…' : 'Releasing the kill switch…', ev.submitter, async () => {
    showKillSwitch(await api('PUT', '/ops/risk/kill-switch', {json: {engaged, reason: $('killswitch-reason').value}}));
    $('killswitch-reason').value = '';
  });
});

loaders.risk = () => busy('Loading the daily comparison…', null, async () => {
  showKillSwitch(await api('GET', '/ops/risk/kill-switch'));
  await loadRisk();
});
$('risk-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  busy('Loading the daily comparison…', ev.submitter, loadRisk);
});

// ---------------------------------------------------------------- projections (admin)

// The projections' state and lag come from this server's Prometheus
// metrics, which the runner refreshes every second (the state gauge is 1
// for the current state: live, catching up, failing, stale, not started).
async function loadProjections() {
  const text = await api('GET', '/metrics', {auth: false});
  const byName = {};
  for (const line of text.split('\n')) {
    const m = /^tradeops_projection_(lag_events|lag_seconds|quarantined_events|applied_events_total|errors_total)\{projection="([^"]+)"\} (\S+)$/.exec(line);
    if (m) (byName[m[2]] ||= {})[m[1]] = Number(m[3]);
    const st = /^tradeops_projection_state\{projection="([^"]+)",state="([^"]+)"\} 1$/.exec(line);
    if (st) (byName[st[1]] ||= {}).state = st[2];
  }
  const names = Object.keys(byName).sort();
  fillRows($('projections-table').tBodies[0], names.length === 0 ? [[el('td', {colSpan: 7}, 'This server runs no projections (serve --projections=off).')]] :
    names.map((n) => {
      const p = byName[n];
      const state = p.state ?? 'starting';
      return [n, state, p.lag_events ?? '', p.lag_seconds === undefined ? '' : p.lag_seconds.toFixed(3), p.quarantined_events ?? '',
        p.applied_events_total ?? 0, p.errors_total ?? 0];
    }));
}

loaders.projections = () => busy('Reading the projections…', null, loadProjections);
$('projections-refresh').addEventListener('click', (ev) => busy('Reading the projections…', ev.target, loadProjections));

// ---------------------------------------------------------------- start

const today = new Date();
for (const id of ['audit-to', 'admin-audit-to']) $(id).max = utcDay(today);
showView('login');
$('login-username').focus();
