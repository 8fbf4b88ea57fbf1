// pairgate's operator page: a frontend of the REST API and its event
// stream, nothing more. Plain script, no build step, no dependencies.
//
// Everything the server sends is untrusted text — display names and
// platforms come from the nodes themselves — so it is only ever placed with
// textContent, never parsed as HTML.
'use strict';

const TOKEN_KEY = 'pairgate.operatorToken';
const REFRESH_DELAY_MS = 100; // events arrive in bursts: refresh once per burst
const CONFIRM_MS = 5000; // how long "Confirm remove" waits for its second click

const state = {
  token: '',
  profiles: [],
  profile: '',
  listing: null, // {pending, paired, connected: Set}
  generation: 0, // bumped on every profile switch and sign-out
  refreshTimer: 0,
  // One refresh at a time: at 100,000 nodes one takes seconds and some
  // 80 MB, and an outside trial saw four in flight at once, each event
  // starting another. Events meanwhile ask for one more (refreshAgain),
  // and the next waits as long as the last took (refreshTook).
  refreshing: false,
  refreshAgain: false,
  refreshTook: 0,
  streamAbort: null,
  lastEventId: '',
  editing: '', // the node whose name is being edited: its row is left alone
  // What is in flight, by profile and request or node id (busyKey): its
  // row's buttons are disabled and say so until the server answers (a
  // stalled database answers late; a second, opposite click then waited
  // behind the first).
  busy: new Map(),
  // The node whose "Confirm remove" is armed, and until when: kept here, not
  // in the button, so a live redraw between the two clicks keeps it armed.
  armed: { nodeId: '', until: 0, timer: 0 },
};

const $ = (sel) => document.querySelector(sel);

class APIError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// api calls the REST API relative to this page (…/ui/ → …/api/v1/), so
// the page also works behind a proxy that mounts pairgate under a prefix.
async function api(method, path, body) {
  const headers = { Authorization: 'Bearer ' + state.token };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(apiURL(path), init);
  } catch {
    // The browser says only "Failed to fetch".
    throw new APIError(0, 'unreachable', 'the server did not answer (stopped, restarting, or out of reach); it may or may not have been done: the lists show what was once it is back');
  }
  if (resp.status === 204) return null;
  let data = null;
  try {
    data = await resp.json();
  } catch {
    // not JSON: the status line says what happened
  }
  if (!resp.ok) {
    const e = data && data.error;
    let message = e && e.message ? e.message : `${resp.status} ${resp.statusText}`;
    const retry = resp.headers.get('Retry-After');
    if (resp.status === 429 && retry && !/retry in/.test(message)) message += ` (try again in ${retry} s)`;
    throw new APIError(resp.status, e ? e.code : '', message);
  }
  return data;
}

function apiURL(path) {
  return new URL('../api/v1' + path, location.href);
}

function profilePath(rest, profile = state.profile) {
  return '/profiles/' + encodeURIComponent(profile) + rest;
}

// --- sign in and out -------------------------------------------------------

async function signIn(token) {
  state.token = token;
  let data;
  try {
    data = await api('GET', '/profiles');
  } catch (err) {
    if (err instanceof APIError && err.status === 401) {
      const refused = new Error('This token opens no profile on this server (or this address is locked out after too many wrong tokens: wait five minutes).');
      refused.refused = true;
      throw refused;
    }
    throw err;
  }
  state.profiles = data.profiles.map((p) => p.name);
  sessionStorage.setItem(TOKEN_KEY, token);
  const select = $('#profile');
  select.replaceChildren(...state.profiles.map((name) => new Option(name, name)));
  $('#signin').hidden = true;
  $('#session').hidden = false;
  $('#app').hidden = false;
  const wanted = hashProfile();
  selectProfile(state.profiles.includes(wanted) ? wanted : state.profiles[0]);
}

function signOut(message, keepToken) {
  if (!keepToken) sessionStorage.removeItem(TOKEN_KEY);
  stopProfile();
  hideNotices();
  state.busy.clear();
  state.token = '';
  state.profile = '';
  state.listing = null;
  $('#session').hidden = true;
  $('#app').hidden = true;
  $('#signin').hidden = false;
  $('#token').value = '';
  $('#signin-error').textContent = message || '';
  $('#token').focus();
}

function hashProfile() {
  return new URLSearchParams(location.hash.slice(1)).get('profile') || '';
}

// --- one profile at a time -------------------------------------------------

function stopProfile() {
  state.generation++;
  clearTimeout(state.refreshTimer);
  if (state.streamAbort) state.streamAbort.abort();
  state.streamAbort = null;
  state.lastEventId = '';
  state.editing = '';
  disarm();
}

function selectProfile(name) {
  stopProfile();
  state.profile = name;
  state.listing = null;
  $('#profile').value = name;
  history.replaceState(null, '', '#profile=' + encodeURIComponent(name));
  for (const old of $('#notices').querySelectorAll('.notice:not(.token)')) old.remove();
  render();
  refresh();
  stream(state.generation);
}

// refresh loads pending and paired (node.pair.list, OpenClaw's own view)
// and which nodes are connected; a stale answer (the profile changed while
// it was in flight) is dropped.
async function refresh() {
  if (state.refreshing) {
    state.refreshAgain = true;
    return;
  }
  state.refreshing = true;
  state.refreshAgain = false;
  const gen = state.generation;
  const began = Date.now();
  try {
    const [list, nodes] = await Promise.all([
      api('POST', profilePath('/rpc'), { method: 'node.pair.list', params: {} }),
      api('GET', profilePath('/nodes')),
    ]);
    if (gen !== state.generation) return;
    state.listing = {
      pending: list.payload.pending,
      paired: list.payload.paired,
      connected: new Set(nodes.nodes.filter((n) => n.connected).map((n) => n.nodeId)),
    };
    for (const stale of document.querySelectorAll('#notices .notice.background')) stale.remove(); // loaded now
    render();
  } catch (err) {
    // Beside an action's own notice, not over it: the refresh after a
    // failed action fails too when the server is gone, and said only
    // that, hiding which action had failed.
    if (gen === state.generation) failed(withAction(err, 'Loading the lists'), state.profile, 'background');
  } finally {
    state.refreshing = false;
    state.refreshTook = Date.now() - began;
    // Asked for meanwhile: what changed since this one began is loaded,
    // at once for a profile switched to meanwhile.
    if (state.refreshAgain && gen !== state.generation) refresh();
    else if (state.refreshAgain) scheduleRefresh();
  }
}

function scheduleRefresh() {
  if (state.refreshing) {
    state.refreshAgain = true;
    return;
  }
  clearTimeout(state.refreshTimer);
  state.refreshTimer = setTimeout(refresh, Math.max(REFRESH_DELAY_MS, state.refreshTook));
}

// stream follows the profile's Server-Sent Events (read with fetch, since
// EventSource cannot send the Authorization header) and refreshes on each
// event. It reconnects with Last-Event-ID, backing off up to 5 s.
async function stream(gen) {
  let backoff = 1000;
  while (gen === state.generation) {
    const ctrl = new AbortController();
    state.streamAbort = ctrl;
    try {
      const headers = { Authorization: 'Bearer ' + state.token, Accept: 'text/event-stream' };
      if (state.lastEventId) headers['Last-Event-ID'] = state.lastEventId;
      const resp = await fetch(apiURL(profilePath('/events')), { headers, cache: 'no-store', signal: ctrl.signal });
      if (resp.status === 401) {
        signOut('The operator token is no longer accepted; sign in again.');
        return;
      }
      if (!resp.ok || !resp.body) throw new Error(`event stream answered ${resp.status}`);
      setLive(true);
      backoff = 1000;
      scheduleRefresh(); // whatever happened while the stream was down
      const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          onEvent(buf.slice(0, end));
          buf = buf.slice(end + 2);
        }
      }
    } catch (err) {
      if (ctrl.signal.aborted) return;
    }
    if (gen !== state.generation) return;
    setLive(false);
    await new Promise((resolve) => setTimeout(resolve, backoff));
    backoff = Math.min(backoff * 2, 5000);
  }
}

function onEvent(block) {
  let name = '';
  for (const line of block.split('\n')) {
    if (line.startsWith('id: ')) state.lastEventId = line.slice(4);
    else if (line.startsWith('event: ')) name = line.slice(7);
  }
  if (name) scheduleRefresh(); // a comment-only block is a heartbeat
}

function setLive(on) {
  const live = $('#live');
  live.textContent = on ? 'live' : 'reconnecting…';
  live.classList.toggle('on', on);
}

// --- decisions -------------------------------------------------------------

// act runs one decision or change on a row (key: its request or node
// id), the row's buttons disabled and naming it until the server answers.
// Its outcome is told even if the operator looked at another profile
// meanwhile; call gets the profile it acts on.
async function act(key, doing, call, what) {
  const profile = state.profile;
  const busy = busyKey(profile, key);
  if (state.busy.has(busy)) return;
  state.busy.set(busy, doing);
  render();
  try {
    await call(profile);
  } catch (err) {
    if (state.token) failed(what ? withAction(err, what) : err, profile);
  } finally {
    state.busy.delete(busy);
    render();
    if (state.profile === profile) refresh();
  }
}

// withAction names what failed ("Remove Den iPad (den-ipad)") in an
// error's message.
function withAction(err, what) {
  if (!(err instanceof APIError)) return new Error(`${what} failed: ${err.message}`);
  return new APIError(err.status, err.code, `${what} failed: ${err.message}`);
}

function busyKey(profile, key) {
  return profile + '\n' + key;
}

function approve(req) {
  return act(req.requestId, 'approving…', async (profile) => {
    const res = await api('POST', profilePath('/requests/' + encodeURIComponent(req.requestId) + '/approve', profile));
    showNotice(`Approved ${label(res.node)} (${res.node.nodeId}, profile ${profile}).`, res.node.token);
  }, `Approve ${label(req)} (${req.nodeId})`);
}

function reject(req) {
  return act(req.requestId, 'rejecting…', async (profile) => {
    await api('POST', profilePath('/requests/' + encodeURIComponent(req.requestId) + '/reject', profile));
    showNotice(`Rejected ${label(req)} (${req.nodeId}, profile ${profile}).`);
  }, `Reject ${label(req)} (${req.nodeId})`);
}

// rename saves a node's new name. A name that did not go through (refused,
// or the server out of reach) is offered again in the form, as typed, to
// mend or retry: it is not lost with the closed form.
async function rename(node, displayName) {
  let failedIn = '';
  await act(node.nodeId, 'renaming…', async (profile) => {
    try {
      await api('PATCH', profilePath('/nodes/' + encodeURIComponent(node.nodeId), profile), { displayName });
    } catch (err) {
      failedIn = profile;
      throw err;
    }
    showNotice(`Renamed ${node.nodeId} to ${displayName} (profile ${profile}).`);
  }, `Rename ${node.nodeId}`);
  if (!failedIn || failedIn !== state.profile || state.editing || !state.token) return;
  const td = $('#nodes tbody').querySelector(`tr[data-key="${CSS.escape(node.nodeId)}"] td.name`);
  // The focus returns to it only from nowhere: not taken from what the
  // operator turned to meanwhile.
  if (td) editName(td, node, displayName, !document.activeElement || document.activeElement === document.body);
}

function remove(node) {
  return act(node.nodeId, 'removing…', async (profile) => {
    await api('DELETE', profilePath('/nodes/' + encodeURIComponent(node.nodeId), profile));
    showNotice(`Removed ${label(node)} (${node.nodeId}, profile ${profile}); its token no longer verifies.`);
  }, `Remove ${label(node)} (${node.nodeId})`);
}

function failed(err, profile = state.profile, kind = '') {
  if (err instanceof APIError && err.status === 401) {
    signOut('The operator token is no longer accepted; sign in again.');
    return;
  }
  showNotice(profile === state.profile ? err.message : `Profile ${profile}: ${err.message}`, '', true, kind);
}

// --- rendering -------------------------------------------------------------

function render() {
  const l = state.listing || { pending: [], paired: [], connected: new Set() };
  const busy = (key) => state.busy.get(busyKey(state.profile, key)) || '';
  const like = lookalikes(l.pending, l.paired);
  reconcile($('#pending tbody'), l.pending, (r) => r.requestId, (r) => JSON.stringify([r, busy(r.requestId), like.get(r.requestId)]),
    (r) => pendingRow(r, like.get(r.requestId)));
  for (const r of l.pending) setAgo($('#pending tbody').querySelector(`tr[data-key="${CSS.escape(r.requestId)}"] td.ago`), ago(r.ts));
  if (state.editing && !l.paired.some((n) => n.nodeId === state.editing)) state.editing = '';
  const armed = (n) => state.armed.nodeId === n.nodeId && Date.now() < state.armed.until;
  // The row whose name is being edited keeps its form; the others follow.
  reconcile($('#nodes tbody'), l.paired, (n) => n.nodeId,
    (n) => (n.nodeId === state.editing ? 'editing' : JSON.stringify([n, l.connected.has(n.nodeId), armed(n), busy(n.nodeId)])),
    (n) => pairedRow(n, l.connected.has(n.nodeId)));
  for (const n of l.paired) {
    if (!l.connected.has(n.nodeId) && n.lastConnectedAtMs) {
      setAgo($('#nodes tbody').querySelector(`tr[data-key="${CSS.escape(n.nodeId)}"] td.ago`), ago(n.lastConnectedAtMs));
    }
  }
  $('#pending-count').textContent = state.listing ? String(l.pending.length) : '';
  $('#paired-count').textContent = state.listing ? String(l.paired.length) : '';
  $('#pending-empty').hidden = !state.listing || l.pending.length > 0;
  $('#nodes-empty').hidden = !state.listing || l.paired.length > 0;
  // An empty list is a sentence, not a table of headers.
  $('#pending').hidden = l.pending.length === 0;
  $('#nodes').hidden = l.paired.length === 0;
}

// reconcile makes tbody's rows those of items, in order, keeping every row
// whose content did not change: a live update or the clock's redraw then
// never takes away the row the operator is about to click or has focused.
function reconcile(tbody, items, keyOf, signatureOf, build) {
  const wanted = new Set(items.map(keyOf));
  for (const tr of [...tbody.children]) {
    if (!wanted.has(tr.dataset.key)) tr.remove();
  }
  const have = new Map([...tbody.children].map((tr) => [tr.dataset.key, tr]));
  let at = tbody.firstElementChild;
  for (const item of items) {
    const key = keyOf(item);
    const sig = signatureOf(item);
    let tr = have.get(key);
    if (!tr || tr.dataset.sig !== sig) {
      const fresh = build(item);
      fresh.dataset.key = key;
      fresh.dataset.sig = sig;
      if (tr) {
        if (at === tr) at = fresh;
        tr.replaceWith(fresh);
      }
      tr = fresh;
    }
    if (tr === at) at = at.nextElementSibling;
    else tbody.insertBefore(tr, at);
  }
}

// setAgo updates a "6s ago" cell in place.
function setAgo(td, text) {
  if (td && td.textContent !== text) td.textContent = text;
}

// pendingRow is a pending request's row; like is the other node its name
// looks like (lookalikes), if any, said under its name.
function pendingRow(req, like) {
  const tr = document.createElement('tr');
  tr.dataset.requestId = req.requestId;
  const name = label(req);
  const doing = state.busy.get(busyKey(state.profile, req.requestId));
  const named = nameCell(req);
  if (like) {
    const warn = document.createElement('span');
    warn.className = 'lookalike';
    warn.textContent = visible(like.paired
      ? `⚠ named like the paired node ${like.name} (${like.nodeId}), but another device`
      : `⚠ named like ${like.name} (node ${like.nodeId}), which asks too`);
    named.append(warn);
  }
  tr.append(
    named,
    cell(req.platform || '', 'platform', 'Platform'),
    cell(req.remoteIp || '', 'ip', 'IP'),
    cell(ago(req.ts), 'ago', 'Requested'),
    cell(req.isRepair ? 'yes' : '', 'repair', 'Repair'),
    cell(req.requestId, 'id', 'Request', req.requestId),
    actions(doing,
      button('Approve', 'approve', () => approve(req), `Approve ${name} (${req.nodeId})`, 'button', !!doing),
      button('Reject', 'reject', () => reject(req), `Reject ${name} (${req.nodeId})`, 'button', !!doing),
    ),
  );
  return tr;
}

// nameCell shows a request's or node's name and, under it, its node id:
// two requests may carry one name, and only the id tells a known node
// from another device that took its name.
function nameCell(x) {
  const td = cell('', 'name', 'Node', x.nodeId);
  const shown = document.createElement('span');
  shown.className = 'label';
  shown.textContent = visible(label(x));
  td.append(shown);
  if (x.displayName && x.displayName !== x.nodeId) {
    const id = document.createElement('span');
    id.className = 'node-id';
    id.textContent = visible(x.nodeId);
    td.append(id);
  }
  return td;
}

function pairedRow(node, connected) {
  const tr = document.createElement('tr');
  tr.dataset.nodeId = node.nodeId;
  const shown = label(node);
  const name = cell(shown, 'name', 'Node');
  const doing = state.busy.get(busyKey(state.profile, node.nodeId));
  const last = connected ? 'connected' : node.lastConnectedAtMs ? ago(node.lastConnectedAtMs) : '';
  const armed = state.armed.nodeId === node.nodeId && Date.now() < state.armed.until;
  const removeButton = button(armed ? 'Confirm remove' : 'Remove', armed ? 'remove confirm' : 'remove', () => {
    if (state.armed.nodeId === node.nodeId && Date.now() < state.armed.until) {
      disarm();
      remove(node);
      return;
    }
    arm(node.nodeId);
    tr.dataset.sig = JSON.stringify([node, connected, true]); // armed in place: no rebuild, focus stays
    removeButton.classList.add('confirm');
    removeButton.textContent = 'Confirm remove';
    removeButton.setAttribute('aria-label', 'Confirm remove ' + shown);
  }, (armed ? 'Confirm remove ' : 'Remove ') + shown, 'button', !!doing);
  tr.append(
    name,
    cell(node.nodeId, 'id', 'ID', node.nodeId),
    cell(node.platform || '', 'platform', 'Platform'),
    cell(node.remoteIp || '', 'ip', 'IP'),
    cell(last, connected ? 'connected' : 'ago', 'Last Connect'),
    actions(doing, button('Rename', 'rename', () => editName(name, node), 'Rename ' + shown, 'button', !!doing), removeButton),
  );
  return tr;
}

// arm makes a node's Remove button ask for its second click, for
// CONFIRM_MS; disarm forgets it.
function arm(nodeId) {
  disarm();
  state.armed = { nodeId, until: Date.now() + CONFIRM_MS, timer: setTimeout(() => { disarm(); render(); }, CONFIRM_MS) };
}

function disarm() {
  clearTimeout(state.armed.timer);
  state.armed = { nodeId: '', until: 0, timer: 0 };
}

// editName turns a name cell into a small form until saved or cancelled,
// holding value (the node's name unless given). One at a time: opening it
// closes another's. It takes the focus when focus says so.
function editName(td, node, value = node.displayName || '', focus = true) {
  const form = document.createElement('form');
  form.className = 'rename';
  const input = document.createElement('input');
  input.name = 'displayName';
  input.required = true;
  input.maxLength = 256;
  input.value = value;
  input.setAttribute('aria-label', 'New name for ' + node.nodeId);
  const close = closeEditing;
  const cancel = button('Cancel', 'cancel', close, 'Cancel renaming ' + node.nodeId);
  form.append(input, button('Save', 'save', null, 'Save the new name of ' + node.nodeId, 'submit'), cancel);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const name = input.value.trim();
    if (!name) return;
    close();
    rename(node, name);
  });
  if (state.editing && state.editing !== node.nodeId) {
    const other = $('#nodes tbody').querySelector(`tr[data-key="${CSS.escape(state.editing)}"]`);
    if (other) other.dataset.sig = '';
  }
  state.editing = node.nodeId;
  const tr = td.closest('tr');
  if (tr) tr.dataset.sig = 'editing'; // kept by render, form and all
  render(); // closes another form
  td.replaceChildren(form);
  if (focus) {
    input.focus();
    input.select();
  }
}

// closeEditing closes the rename form, if one is open: its row is rebuilt
// from the listing.
function closeEditing() {
  if (!state.editing) return;
  const tr = $('#nodes tbody').querySelector(`tr[data-key="${CSS.escape(state.editing)}"]`);
  if (tr) tr.dataset.sig = '';
  state.editing = '';
  render();
}

// cell is one table cell; heading labels it when the table is shown as
// cards on a narrow screen, and title shows a value that may be cut.
function cell(text, className, heading, title) {
  const td = document.createElement('td');
  td.textContent = visible(text);
  if (className) td.className = className;
  if (heading) td.dataset.label = heading;
  if (title) td.title = visible(title);
  return td;
}

// actions is a row's buttons and, while one of them is in flight, what
// the page is waiting for.
function actions(doing, ...buttons) {
  const td = document.createElement('td');
  td.className = 'actions';
  if (doing) {
    const status = document.createElement('span');
    status.className = 'doing';
    status.setAttribute('role', 'status');
    status.textContent = doing + ' (waiting for the server)';
    td.append(status);
  }
  td.append(...buttons);
  return td;
}

// button is a button; name is its accessible name when the text alone
// would not say which node it acts on.
function button(text, className, onClick, name, type = 'button', disabled = false) {
  const b = document.createElement('button');
  b.type = type;
  b.disabled = disabled;
  b.className = className;
  b.textContent = text;
  if (name) b.setAttribute('aria-label', visible(name));
  if (onClick) b.addEventListener('click', onClick);
  return b;
}

// visible shows control, bidi-override and invisible characters as
// escapes (\x1b, \u202e, \u200b), as the CLI does: older imported data may hold them, and a
// browser would hide them or let them reorder what the operator reads.
// INVISIBLE, KEPT and CONFUSABLE come from rules.js, which the server makes
// from the CLI's rules (internal/confusable).
function visible(text) {
  return String(text).replace(INVISIBLE, (c) => {
    if (KEPT.has(c)) return c;
    const n = c.codePointAt(0);
    if (n < 0x80) return '\\x' + n.toString(16).padStart(2, '0');
    if (n <= 0xffff) return '\\u' + n.toString(16).padStart(4, '0');
    return '\\U' + n.toString(16).padStart(8, '0');
  });
}

function label(x) {
  return x.displayName || x.nodeId;
}

// A device asking to pair may take a paired node's name, exactly or in
// letters that look the same; its request then reads like that node's
// repair.
// skeleton reduces a name to what a reader can tell apart (internal/confusable).
function skeleton(name) {
  let out = '';
  for (let ch of name.normalize('NFKD')) {
    ch = ch.toLowerCase(); // I, then i, reads as l
    ch = CONFUSABLE.get(ch) || ch;
    if (/^[\p{L}\p{Nd}]+$/u.test(ch)) out += ch;
  }
  return out.replaceAll('rn', 'm').replaceAll('vv', 'w');
}

// lookalikes maps each pending request whose name looks like another
// node's (paired first, else asking too) to that node; a request of a
// paired node's own id is its repair, not a look-alike.
function lookalikes(pending, paired) {
  const bySkeleton = new Map();
  const add = (name, nodeId, isPaired) => {
    const k = skeleton(name);
    if (!k) return;
    if (!bySkeleton.has(k)) bySkeleton.set(k, []);
    bySkeleton.get(k).push({ name, nodeId, paired: isPaired });
  };
  for (const n of paired) add(label(n), n.nodeId, true);
  for (const r of pending) add(label(r), r.nodeId, false);
  const out = new Map();
  for (const r of pending) {
    const other = (bySkeleton.get(skeleton(label(r))) || []).find((o) => o.nodeId !== r.nodeId);
    if (other) out.set(r.requestId, other);
  }
  return out;
}

// ago says how long ago a time was, as the openclaw CLI does: 6s, 1m, 2h, 3d.
function ago(ms) {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return s + 's ago';
  if (s < 3600) return Math.floor(s / 60) + 'm ago';
  if (s < 86400) return Math.floor(s / 3600) + 'h ago';
  return Math.floor(s / 86400) + 'd ago';
}

// showNotice says what an action did. A notice that carries a node's new
// token stays until the operator dismisses it (the token is shown only
// once); any other notice replaces the previous one of its kind.
// showNotice shows text (with a token: kept until dismissed). A notice
// replaces the others but tokens; one of kind 'background' (the lists
// failing to load) replaces only its like, beside an action's.
function showNotice(text, token, isError, kind = '') {
  const box = $('#notices');
  if (!token) {
    const replaced = kind === 'background' ? '.notice.background' : '.notice:not(.token)';
    for (const old of box.querySelectorAll(replaced)) old.remove();
  }
  const div = document.createElement('div');
  div.className = 'notice' + (token ? ' token' : '') + (isError ? ' error' : '') + (kind ? ' ' + kind : '');
  const p = document.createElement('p');
  p.textContent = visible(text);
  div.append(p);
  if (token) {
    const line = document.createElement('p');
    const code = document.createElement('code');
    code.className = 'token-value';
    code.textContent = token;
    line.append('Its token, shown this once (the node also receives it over its own session): ', code);
    const copy = button('Copy', 'copy', async () => {
      try {
        await navigator.clipboard.writeText(token);
        copy.textContent = 'Copied';
      } catch {
        // No clipboard (plain http, or refused): select it for a manual copy.
        getSelection().selectAllChildren(code);
        copy.textContent = 'Selected: press Ctrl+C';
      }
    }, 'Copy the token of ' + text);
    div.append(line, copy);
  }
  div.append(button('Dismiss', 'dismiss', () => div.remove(), 'Dismiss: ' + text));
  box.prepend(div);
}

function hideNotices() {
  $('#notices').replaceChildren();
}

// --- start -----------------------------------------------------------------

function start() {
  $('#signin').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const button = $('#signin-button');
    button.disabled = true;
    $('#signin-error').textContent = '';
    try {
      await signIn($('#token').value.trim());
      $('#token').value = '';
    } catch (err) {
      state.token = '';
      $('#signin-error').textContent = err.message;
    } finally {
      button.disabled = false;
    }
  });
  $('#signout').addEventListener('click', () => signOut());
  // Escape closes the rename form wherever the focus is.
  document.addEventListener('keydown', (ev) => {
    if (ev.key === 'Escape') closeEditing();
  });
  $('#profile').addEventListener('change', (ev) => selectProfile(ev.target.value));
  window.addEventListener('hashchange', () => {
    const wanted = hashProfile();
    if (state.token && wanted !== state.profile && state.profiles.includes(wanted)) selectProfile(wanted);
  });
  // "6s ago" grows old: redraw every 10 s.
  setInterval(() => {
    if (state.listing) render();
  }, 10000);

  const saved = sessionStorage.getItem(TOKEN_KEY);
  if (!saved) {
    signOut();
    return;
  }
  const resume = () => signIn(saved).catch((err) => {
    if (!err.refused) {
      // Locked out for a while, the server busy, restarting or out of
      // reach: the saved token may be right; it is kept and tried again.
      const wait = 10;
      signOut(`${err.message} Trying again in ${wait} s.`, true);
      setTimeout(() => { if (!state.token && sessionStorage.getItem(TOKEN_KEY) === saved) resume(); }, wait * 1000);
      return;
    }
    signOut(err.message);
  });
  resume();
}

start();
