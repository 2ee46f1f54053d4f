// drover dashboard: polls GET /api/v1/farms once a second and draws one live table per farm.
// Vanilla JS, no dependencies, no inline code (the page's CSP forbids it), no HTML parsing: every
// value from the API goes into the page as text.
//
// rps, error rate, p50/p99 and the share of the farm's requests are computed here from counter
// deltas between samples (WINDOW_MS); the sparkline shows the share over the last HISTORY samples.
// The admin token is kept in sessionStorage (this tab only) and sent as Authorization: Bearer;
// it is never sent automatically by the browser, unlike basic-auth credentials.
'use strict';

const POLL_MS = 1000;
const WINDOW_MS = 5000;
const HISTORY = 60;
const TOKEN_KEY = 'drover.admin.token';
const SVG = 'http://www.w3.org/2000/svg';

const state = {
  bounds: [],         // latency_bounds_ms from the API
  samples: new Map(), // "farm/member" -> [{t, requests, failures, buckets}]
  shares: new Map(),  // "farm/member" -> [share 0..1 or null], oldest first
  farmLast: new Map(),// farm -> {t, perMember: Map(name -> requests)}
  tables: new Map(),  // farm -> {el, rows: Map(name -> row refs), key}
  lastOk: 0,
  waitingForToken: false,
  timer: null,
  noCluster: false,   // GET /api/v1/cluster/peers answered 404: a lone node, stop asking
};

const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function token() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch (_) { return ''; }
}

function setToken(t) {
  try {
    if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
  } catch (_) { /* storage disabled: the token lives until the page is left */ }
  updateTokenButton();
}

function authHeaders(extra) {
  const h = Object.assign({}, extra || {});
  const t = token();
  if (t) h.Authorization = 'Bearer ' + t;
  return h;
}

function updateTokenButton() {
  $('token-button').textContent = token() ? 'Forget token' : 'Set token';
}

function showLogin(why) {
  $('login-why').textContent = why;
  $('login').hidden = false;
  $('token').focus();
}

function hideLogin() {
  $('login').hidden = true;
}

let sayTimer = null;
function say(text, ok) {
  const m = $('message');
  clearTimeout(sayTimer);
  if (!text) { m.hidden = true; return; }
  m.textContent = text;
  m.className = ok ? 'message ok' : 'message';
  m.hidden = false;
  // Good news fades; a refusal stays until the next action.
  if (ok) sayTimer = setTimeout(() => { m.hidden = true; }, 4000);
}

// ---------------------------------------------------------------------------------------------
// Formatting

function fmtRate(x) {
  if (x === null || !isFinite(x)) return '—';
  if (x >= 100) return x.toFixed(0);
  if (x >= 10) return x.toFixed(1);
  return x.toFixed(x === 0 ? 0 : 2);
}

function fmtMs(x) {
  if (x === null || x === undefined || !isFinite(x)) return '—';
  if (x >= 1000) return (x / 1000).toFixed(2) + ' s';
  if (x >= 100) return x.toFixed(0) + ' ms';
  if (x >= 10) return x.toFixed(1) + ' ms';
  return x.toFixed(2) + ' ms';
}

function fmtAge(s) {
  if (s < 1) return 'just now';
  if (s < 90) return s.toFixed(0) + ' s ago';
  if (s < 5400) return (s / 60).toFixed(0) + ' min ago';
  return (s / 3600).toFixed(1) + ' h ago';
}

function fmtCount(n) {
  return Number(n).toLocaleString('en-US');
}

function fmtMetric(v) {
  if (typeof v !== 'number') return String(v);
  if (Number.isInteger(v)) return String(v);
  return Math.abs(v) >= 100 ? v.toFixed(0) : v.toPrecision(3);
}

// ---------------------------------------------------------------------------------------------
// Windowed numbers from the samples

// The q quantile (0..1) of a histogram's per-bucket counts, in ms: linear within the bucket that
// holds it, as Prometheus' histogram_quantile (and the server's latency_p50_ms) does.
function quantile(counts, q) {
  let total = 0;
  for (const c of counts) total += c;
  if (total <= 0) return null;
  const rank = q * total;
  const last = state.bounds[state.bounds.length - 1];
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const n = counts[i];
    if (n <= 0) continue;
    const before = seen;
    seen += n;
    if (seen >= rank) {
      if (i >= state.bounds.length) return last;
      const lo = i === 0 ? 0 : state.bounds[i - 1];
      const hi = state.bounds[i];
      return lo + (hi - lo) * ((rank - before) / n);
    }
  }
  return last;
}

// The oldest sample within WINDOW_MS of the newest, and the newest.
function windowOf(samples) {
  const newest = samples[samples.length - 1];
  let oldest = newest;
  for (let i = samples.length - 2; i >= 0; i--) {
    if (newest.t - samples[i].t > WINDOW_MS + POLL_MS / 2) break;
    oldest = samples[i];
  }
  return [oldest, newest];
}

function live(key) {
  const samples = state.samples.get(key) || [];
  if (samples.length < 2) return { rps: null, errps: null, p50: null, p99: null, ready: false };
  const [a, b] = windowOf(samples);
  const dt = (b.t - a.t) / 1000;
  if (dt <= 0) return { rps: null, errps: null, p50: null, p99: null, ready: false };
  const counts = b.buckets.map((c, i) => c - (a.buckets[i] || 0));
  return {
    rps: (b.requests - a.requests) / dt,
    errps: (b.failures - a.failures) / dt,
    p50: quantile(counts, 0.5),
    p99: quantile(counts, 0.99),
    ready: true,
  };
}

function record(farm, now) {
  let farmDelta = 0;
  const deltas = new Map();
  const prev = state.farmLast.get(farm.name);
  for (const m of farm.members) {
    const key = farm.name + '/' + m.name;
    let s = state.samples.get(key);
    if (!s) { s = []; state.samples.set(key, s); }
    s.push({ t: now, requests: m.requests, failures: m.failures, buckets: m.latency_buckets });
    while (s.length > 2 && now - s[0].t > WINDOW_MS + 2 * POLL_MS) s.shift();
    if (prev && prev.perMember.has(m.name)) {
      const d = Math.max(0, m.requests - prev.perMember.get(m.name));
      deltas.set(m.name, d);
      farmDelta += d;
    }
  }
  const perMember = new Map(farm.members.map((m) => [m.name, m.requests]));
  state.farmLast.set(farm.name, { t: now, perMember });
  if (!prev) return;
  for (const m of farm.members) {
    const key = farm.name + '/' + m.name;
    let h = state.shares.get(key);
    if (!h) { h = []; state.shares.set(key, h); }
    h.push(farmDelta > 0 ? (deltas.get(m.name) || 0) / farmDelta : null);
    while (h.length > HISTORY) h.shift();
  }
}

// ---------------------------------------------------------------------------------------------
// Sparkline: the member's share of the farm's requests, 0 to 100 %, last HISTORY samples.

function sparkline(svg, history) {
  const W = 120, H = 26, pad = 2;
  while (svg.firstChild) svg.removeChild(svg.firstChild);
  const base = document.createElementNS(SVG, 'line');
  base.setAttribute('class', 'base');
  base.setAttribute('x1', 0); base.setAttribute('x2', W);
  base.setAttribute('y1', H - pad); base.setAttribute('y2', H - pad);
  svg.appendChild(base);
  const pts = [];
  const step = W / (HISTORY - 1);
  const offset = HISTORY - history.length;
  history.forEach((v, i) => {
    if (v === null) return;
    pts.push([(offset + i) * step, H - pad - v * (H - 2 * pad)]);
  });
  if (pts.length === 0) return;
  const line = pts.map((p) => p[0].toFixed(1) + ',' + p[1].toFixed(1)).join(' ');
  const area = document.createElementNS(SVG, 'polygon');
  area.setAttribute('class', 'area');
  area.setAttribute('points',
    pts[0][0].toFixed(1) + ',' + (H - pad) + ' ' + line + ' ' + pts[pts.length - 1][0].toFixed(1) + ',' + (H - pad));
  svg.appendChild(area);
  const pl = document.createElementNS(SVG, 'polyline');
  pl.setAttribute('class', 'line');
  pl.setAttribute('points', pts.length === 1 ? line + ' ' + line : line);
  svg.appendChild(pl);
}

// ---------------------------------------------------------------------------------------------
// Tables

const COLUMNS = [
  ['Member', ''], ['State', ''], ['Weight', ''], ['In-flight', 'num'], ['rps', 'num'],
  ['p50', 'num'], ['p99', 'num'], ['Errors', 'num'], ['Share of requests', ''],
  ['Reported', ''], ['', ''],
];

function buildFarm(farm) {
  const section = el('section', 'farm');
  section.dataset.farm = farm.name;
  const head = el('div', 'farm-head');
  head.appendChild(el('h2', null, farm.name));
  const totals = el('div', 'totals');
  head.appendChild(totals);
  section.appendChild(head);
  const wrap = el('div', 'table-wrap');
  const table = el('table');
  const thead = el('thead');
  const hr = el('tr');
  for (const [label, cls] of COLUMNS) hr.appendChild(el('th', cls || null, label));
  thead.appendChild(hr);
  table.appendChild(thead);
  const tbody = el('tbody');
  table.appendChild(tbody);
  wrap.appendChild(table);
  section.appendChild(wrap);
  const rows = new Map();
  for (const m of farm.members) {
    const r = buildRow(farm.name, m.name);
    rows.set(m.name, r);
    tbody.appendChild(r.tr);
  }
  return { el: section, totals, rows, key: farm.members.map((m) => m.name).join('\n') };
}

function buildRow(farmName, name) {
  const tr = el('tr');
  tr.dataset.member = name;
  const td = (cls) => { const c = el('td', cls); tr.appendChild(c); return c; };
  const r = { tr };
  const cName = td('c-name');
  r.name = cName.appendChild(el('span', 'name', name));
  r.addr = cName.appendChild(el('span', 'addr mono'));
  r.flags = td('c-flags');
  const cWeight = td('c-weight');
  const wbox = cWeight.appendChild(el('div', 'weight'));
  r.weight = wbox.appendChild(el('input'));
  r.weight.type = 'number';
  r.weight.min = '1';
  r.weight.max = '1000';
  r.weight.setAttribute('aria-label', 'weight of ' + name);
  r.weightPct = wbox.appendChild(el('span', 'muted'));
  const setW = wbox.appendChild(el('button', null, 'Set'));
  setW.dataset.action = 'weight';
  setW.addEventListener('click', () => {
    const n = Number(r.weight.value);
    write(farmName, name, 'PATCH', '', { weight: n }, r.weight);
  });
  r.weight.addEventListener('keydown', (e) => { if (e.key === 'Enter') setW.click(); });
  r.inflight = td('num c-inflight');
  r.rps = td('num c-rps');
  r.p50 = td('num c-p50');
  r.p99 = td('num c-p99');
  r.errors = td('num c-errors');
  const cShare = td('c-share-cell');
  const shareBox = cShare.appendChild(el('div', 'c-share'));
  r.spark = document.createElementNS(SVG, 'svg');
  r.spark.setAttribute('class', 'spark');
  r.spark.setAttribute('viewBox', '0 0 120 26');
  r.spark.setAttribute('preserveAspectRatio', 'none');
  r.spark.setAttribute('role', 'img');
  shareBox.appendChild(r.spark);
  r.share = shareBox.appendChild(el('span', 'share-pct c-share-pct'));
  r.reported = td('c-reported');
  const cAct = td('c-actions');
  const box = cAct.appendChild(el('div', 'actions'));
  r.onoff = box.appendChild(el('button'));
  r.onoff.addEventListener('click', () => write(farmName, name, 'POST', r.onoff.dataset.action));
  r.drain = box.appendChild(el('button'));
  r.drain.addEventListener('click', () => write(farmName, name, 'POST', r.drain.dataset.action));
  return r;
}

function badge(parent, text, cls) {
  parent.appendChild(el('span', 'badge ' + cls, text));
}

function updateRow(farm, r, m) {
  const key = farm.name + '/' + m.name;
  r.tr.classList.toggle('not-ready', !m.ready);
  r.addr.textContent = m.address + (m.route ? '  route ' + m.route : '');
  r.flags.replaceChildren();
  badge(r.flags, m.on ? 'on' : 'off', m.on ? 'good' : 'off');
  badge(r.flags, m.up ? 'up' : 'down', m.up ? 'good' : 'bad');
  badge(r.flags, m.in ? 'in' : 'out', m.in ? 'good' : 'warn');
  if (m.draining) badge(r.flags, 'draining', 'warn');
  if (m.ejected) badge(r.flags, 'ejected', 'bad');
  if (m.agent_failing) badge(r.flags, 'agent failing', 'warn');
  if (m.last_transition) {
    const t = m.last_transition;
    r.flags.title = 'last change: ' + t.state + ' ' + fmtAge(t.age_s) + ' — ' + t.reason;
  }
  if (document.activeElement !== r.weight) r.weight.value = String(m.weight);
  r.weightPct.textContent = m.weight_pct !== 100 ? m.weight_pct + '%' : '';
  r.inflight.textContent = String(m.in_flight);
  const l = live(key);
  r.rps.textContent = l.ready ? fmtRate(l.rps) : '…';
  r.p50.textContent = l.ready && l.p50 !== null ? fmtMs(l.p50) : fmtMs(m.latency_p50_ms);
  r.p99.textContent = l.ready && l.p99 !== null ? fmtMs(l.p99) : fmtMs(m.latency_p99_ms);
  r.p50.title = 'since start: ' + fmtMs(m.latency_p50_ms) + ' · EWMA ' + fmtMs(m.latency_ewma_ms);
  r.p99.title = 'since start: ' + fmtMs(m.latency_p99_ms);
  r.errors.replaceChildren();
  const errs = el('span', 'errors' + (l.errps > 0 ? ' bad' : ''), fmtCount(m.failures));
  r.errors.appendChild(errs);
  if (l.errps > 0) r.errors.appendChild(el('span', 'age', fmtRate(l.errps) + '/s'));
  const h = state.shares.get(key) || [];
  sparkline(r.spark, h);
  const cur = h.length ? h[h.length - 1] : null;
  r.share.textContent = cur === null ? '—' : (cur * 100).toFixed(0) + '%';
  r.reported.replaceChildren();
  if (m.reported) {
    const rep = m.reported;
    const box = r.reported.appendChild(el('span', 'metrics'));
    const keys = Object.keys(rep.metrics).sort();
    if (keys.length === 0 && rep.weight_pct !== null) keys.push('__weight');
    keys.forEach((k, i) => {
      if (i) box.appendChild(document.createTextNode(' · '));
      const kv = box.appendChild(el('span', 'kv'));
      if (k === '__weight') {
        kv.appendChild(el('span', 'k', 'weight '));
        kv.appendChild(document.createTextNode(rep.weight_pct + '%'));
        return;
      }
      kv.appendChild(el('span', 'k', k + ' '));
      kv.appendChild(document.createTextNode(fmtMetric(rep.metrics[k])));
    });
    if (keys.length === 0) box.appendChild(document.createTextNode(rep.states.join(' ') || rep.source));
    const stale = farm.expect_s !== null && rep.age_s > farm.expect_s;
    r.reported.appendChild(el('span', 'age' + (stale ? ' stale' : ''), rep.source + ', ' + fmtAge(rep.age_s)));
  } else {
    r.reported.appendChild(el('span', 'muted', '—'));
  }
  r.onoff.textContent = m.on ? 'Disable' : 'Enable';
  r.onoff.dataset.action = m.on ? 'disable' : 'enable';
  r.onoff.className = m.on ? 'danger' : 'primary';
  r.drain.textContent = m.draining ? 'Undrain' : 'Drain';
  r.drain.dataset.action = m.draining ? 'undrain' : 'drain';
}

function updateFarm(farm, t) {
  t.totals.replaceChildren();
  const item = (label, value, cls) => {
    const s = el('span', cls || null);
    s.appendChild(document.createTextNode(label + ' '));
    s.appendChild(el('b', null, value));
    t.totals.appendChild(s);
  };
  const policy = el('span', 'badge info', farm.policy);
  t.totals.appendChild(policy);
  if (farm.panic) t.totals.appendChild(el('span', 'badge bad', 'panic: health ignored'));
  let rps = 0, inflight = 0, ready = 0, known = true;
  for (const m of farm.members) {
    const l = live(farm.name + '/' + m.name);
    if (l.ready) rps += l.rps; else known = false;
    inflight += m.in_flight;
    if (m.ready) ready += 1;
  }
  item('ready', ready + ' / ' + farm.members.length);
  item('rps', known ? fmtRate(rps) : '…');
  item('in-flight', String(inflight));
  item('requests', fmtCount(farm.requests));
  item('retries', fmtCount(farm.retries));
  if (farm.sticky) item('sticky', farm.sticky.mode + (farm.sticky.nofailover ? ', nofailover' : ''));
  if (farm.expect_s !== null) item('reports expected every', farm.expect_s + ' s');
  for (const m of farm.members) {
    const r = t.rows.get(m.name);
    if (r) updateRow(farm, r, m);
  }
}

function render(data, now) {
  state.bounds = data.latency_bounds_ms || state.bounds;
  const main = $('farms');
  const seen = new Set();
  for (const farm of data.farms) {
    record(farm, now);
    seen.add(farm.name);
    const key = farm.members.map((m) => m.name).join('\n');
    let t = state.tables.get(farm.name);
    if (!t || t.key !== key) {
      const fresh = buildFarm(farm);
      if (t) main.replaceChild(fresh.el, t.el); else main.appendChild(fresh.el);
      t = fresh;
      state.tables.set(farm.name, t);
    }
    updateFarm(farm, t);
  }
  for (const [name, t] of state.tables) {
    if (!seen.has(name)) { t.el.remove(); state.tables.delete(name); }
  }
  if (data.farms.length === 0 && !main.firstChild) main.appendChild(el('p', 'muted', 'No farms.'));
}

// The cluster's peers (GET /api/v1/cluster/peers), below the farms, on a node with [cluster].
function renderPeers(data) {
  const section = $('peers');
  section.replaceChildren();
  const head = el('div', 'farm-head');
  head.appendChild(el('h2', null, 'cluster peers'));
  const a = data.applied;
  head.appendChild(el('div', 'totals', 'node ' + data.node + ' · applied from peers: ' + a.op + ' op, '
    + a.sticky + ' sticky, ' + a.report + ' report'));
  section.appendChild(head);
  const wrap = el('div', 'table-wrap');
  const table = el('table');
  const hr = el('tr');
  for (const [label, cls] of [['peer'], ['gossip address'], ['state'], ['last heartbeat', 'num'],
    ['op keys', 'num'], ['sticky keys', 'num'], ['report keys', 'num']]) hr.appendChild(el('th', cls || null, label));
  const thead = el('thead');
  thead.appendChild(hr);
  table.appendChild(thead);
  const tbody = el('tbody');
  for (const p of data.peers) {
    const tr = el('tr');
    tr.dataset.peer = p.name;
    tr.appendChild(el('td', null, p.name));
    tr.appendChild(el('td', null, p.address));
    const st = el('td');
    if (p.self) badge(st, 'this node', 'info');
    else if (p.alive) badge(st, 'alive', 'good');
    else badge(st, 'dead', 'bad');
    tr.appendChild(st);
    const hb = p.last_heartbeat_ms;
    tr.appendChild(el('td', 'num', hb === null ? '–' : (hb < 1000 ? hb + ' ms ago' : fmtAge(hb / 1000))));
    tr.appendChild(el('td', 'num', String(p.keys.op)));
    tr.appendChild(el('td', 'num', String(p.keys.sticky)));
    tr.appendChild(el('td', 'num', String(p.keys.report)));
    tbody.appendChild(tr);
  }
  table.appendChild(tbody);
  wrap.appendChild(table);
  section.appendChild(wrap);
  section.hidden = false;
}

async function pollPeers() {
  if (state.noCluster) return;
  try {
    const res = await fetch('/api/v1/cluster/peers', { headers: authHeaders(), cache: 'no-store' });
    if (res.status === 404) { state.noCluster = true; return; }
    if (res.ok) renderPeers(await res.json());
  } catch (e) {
    // The farms' poll reports a lost connection.
  }
}

// ---------------------------------------------------------------------------------------------
// Talking to the API

async function poll() {
  clearTimeout(state.timer);
  state.timer = null;
  if (state.waitingForToken) return;
  const status = $('status');
  try {
    const res = await fetch('/api/v1/farms', { headers: authHeaders(), cache: 'no-store' });
    if (res.status === 401) {
      const hadToken = !!token();
      if (hadToken) setToken('');
      state.waitingForToken = true;
      status.textContent = 'needs the admin token';
      status.className = 'status bad';
      showLogin(hadToken ? 'The token was refused: enter the admin token.'
        : 'Reading this admin listener needs the admin token.');
      return;
    }
    if (!res.ok) throw new Error('GET /api/v1/farms: ' + res.status);
    const data = await res.json();
    const now = Date.now();
    render(data, now);
    await pollPeers();
    state.lastOk = now;
    status.textContent = 'live · updated ' + new Date(now).toLocaleTimeString();
    status.className = 'status';
  } catch (e) {
    status.textContent = 'connection lost (' + (e && e.message ? e.message : e) + '); retrying';
    status.className = 'status bad';
  }
  state.timer = setTimeout(poll, POLL_MS);
}

async function write(farm, member, method, action, body, focusAfter) {
  if (!token()) {
    showLogin('Changing a member needs the admin token.');
    return;
  }
  let path = '/api/v1/farms/' + encodeURIComponent(farm) + '/members/' + encodeURIComponent(member);
  if (action) path += '/' + action;
  const what = member + ': ' + (action || 'weight ' + (body && body.weight));
  try {
    const res = await fetch(path, {
      method,
      headers: authHeaders(body ? { 'Content-Type': 'application/json' } : {}),
      body: body ? JSON.stringify(body) : undefined,
      cache: 'no-store',
    });
    if (res.status === 401) {
      setToken('');
      showLogin('The token was refused: enter the admin token.');
      return;
    }
    let answer = null;
    try { answer = await res.json(); } catch (_) { /* a text answer */ }
    if (!res.ok) {
      say(what + ' refused (' + res.status + ')' + (answer && answer.error ? ': ' + answer.error : ''));
      return;
    }
    say(what + ' done', true);
    if (focusAfter) focusAfter.blur();
  } catch (e) {
    say(what + ' failed: ' + (e && e.message ? e.message : e));
  }
  poll();
}

function start() {
  updateTokenButton();
  $('login').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = $('token').value.trim();
    if (!t) return;
    setToken(t);
    $('token').value = '';
    hideLogin();
    say('');
    state.waitingForToken = false;
    poll();
  });
  $('token-cancel').addEventListener('click', hideLogin);
  $('token-button').addEventListener('click', () => {
    if (token()) {
      setToken('');
      say('Token forgotten.', true);
      poll();
    } else {
      showLogin('Enter the admin token to change members.');
    }
  });
  poll();
}

document.addEventListener('DOMContentLoaded', start);
