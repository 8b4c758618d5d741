// switchboard web console: registrations, active calls and recent calls, refreshed every 2 s,
// and the ladder diagram of one Call-ID drawn from the SIP trace.
//
// Everything that comes from the network (users, contacts, user agents, SIP messages) reaches
// the page through textContent or setAttribute only: never as markup.
//
// Speed with many rows: each table keeps a Map from id to its row and cells. A refresh updates
// only the cells whose text changed, inserts new rows, removes gone ones, and moves a row only
// when it is out of place; unchanged rows are not touched. The once-a-second countdowns and
// durations are written only for the rows in view (an IntersectionObserver on each table's
// scroll box): a text change anywhere in a 1,000-row table costs a layout of the whole table
// (about 10 ms), so the tick changes a dozen cells, not a thousand.
'use strict';

(() => {
  const REFRESH_MS = 2000;
  const RECENT_LIMIT = 50;
  const TOKEN_KEY = 'switchboard-api-token';
  const SVG_NS = 'http://www.w3.org/2000/svg';

  const $ = (id) => document.getElementById(id);

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    waitingForToken: false,
    // Server clock minus browser clock, in seconds (from the registrations' expires_at/in).
    skew: 0,
    timer: null,
    ladder: null, // { callId, lastSeq, selectedSeq }
  };

  class AuthNeeded extends Error {}

  // ---------------------------------------------------------------- small DOM helpers

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function notice(text) {
    const n = $('notice');
    n.textContent = text || '';
    n.hidden = !text;
  }

  // ---------------------------------------------------------------- formatting

  function pad2(n) {
    return String(n).padStart(2, '0');
  }

  // 75 -> "1:15", 3725 -> "1:02:05".
  function clock(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    return h > 0 ? `${h}:${pad2(m)}:${pad2(s % 60)}` : `${m}:${pad2(s % 60)}`;
  }

  function serverNow() {
    return Date.now() / 1000 + state.skew;
  }

  function when(ms) {
    const d = new Date(ms);
    const today = new Date();
    const time = d.toLocaleTimeString();
    return d.toDateString() === today.toDateString() ? time : `${d.toLocaleDateString()} ${time}`;
  }

  // ---------------------------------------------------------------- API access

  async function api(path, options = {}) {
    const headers = new Headers(options.headers || {});
    if (state.token) headers.set('Authorization', `Bearer ${state.token}`);
    const res = await fetch(path, { ...options, headers, cache: 'no-store' });
    if (res.status === 401) {
      askForToken(state.token ? 'That token was not accepted.' : '');
      throw new AuthNeeded();
    }
    return res;
  }

  async function apiJson(path) {
    const res = await api(path);
    if (!res.ok) throw new Error(`${path}: ${await errorOf(res)}`);
    return res.json();
  }

  async function errorOf(res) {
    try {
      const body = await res.json();
      if (body && typeof body.error === 'string') return body.error;
    } catch (_) {
      // not JSON
    }
    return `HTTP ${res.status}`;
  }

  function askForToken(why) {
    state.waitingForToken = true;
    const err = $('token-error');
    err.textContent = why;
    err.hidden = !why;
    const dialog = $('token-dialog');
    if (!dialog.open) dialog.showModal();
    $('token-input').focus();
  }

  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const token = $('token-input').value.trim();
    if (!token) return;
    state.token = token;
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token-input').value = '';
    $('token-dialog').close();
    state.waitingForToken = false;
    refreshSoon(0);
  });

  // ---------------------------------------------------------------- live tables

  // A tbody whose rows are keyed by id. `create(item)` returns an entry with a `row` and a
  // `set(name, text)` that writes a cell only when its text changes; `update(entry, item)`
  // calls it for each cell. `tick(entry, now)` writes the cells that change with the clock
  // (countdowns, durations); it runs for rows in view only, since with a thousand rows a text
  // change anywhere costs a layout of the whole table: the table watches which rows are inside
  // its scroll box and ticks just those (and a row as it comes into view).
  class LiveTable {
    constructor(tbody, { key, create, update, tick }) {
      this.tbody = tbody;
      this.key = key;
      this.create = create;
      this.update = update;
      this.tick = tick || (() => {});
      this.rows = new Map();
      this.entryOf = new WeakMap();
      this.visible = new Set();
      this.watcher = new IntersectionObserver(
        (changes) => {
          const now = serverNow();
          for (const change of changes) {
            const entry = this.entryOf.get(change.target);
            if (!entry) continue;
            if (change.isIntersecting) {
              this.visible.add(entry);
              this.tick(entry, now);
            } else {
              this.visible.delete(entry);
            }
          }
        },
        { root: tbody.closest('.table-wrap'), rootMargin: '200px 0px' },
      );
    }

    sync(items) {
      const keys = items.map(this.key);
      const wanted = new Set(keys);
      for (const [k, entry] of this.rows) {
        if (!wanted.has(k)) {
          this.watcher.unobserve(entry.row);
          this.visible.delete(entry);
          entry.row.remove();
          this.rows.delete(k);
        }
      }
      const now = serverNow();
      let prev = null;
      items.forEach((item, i) => {
        const k = keys[i];
        let entry = this.rows.get(k);
        const fresh = !entry;
        if (fresh) {
          entry = this.create(item);
          this.rows.set(k, entry);
          this.entryOf.set(entry.row, entry);
          this.watcher.observe(entry.row);
        }
        entry.item = item;
        this.update(entry, item);
        if (fresh || this.visible.has(entry)) this.tick(entry, now);
        const expected = prev ? prev.nextSibling : this.tbody.firstChild;
        if (expected !== entry.row) this.tbody.insertBefore(entry.row, expected);
        prev = entry.row;
      });
    }

    // Once a second: the clock-driven cells of the rows in view.
    tickVisible() {
      const now = serverNow();
      for (const entry of this.visible) this.tick(entry, now);
    }

    get size() {
      return this.rows.size;
    }
  }

  // A row with named cells; `set` skips writes that would not change the text.
  function makeEntry(names) {
    const row = el('tr');
    const cells = {};
    const texts = {};
    for (const name of names) {
      const td = el('td', `c-${name}`);
      cells[name] = td;
      row.appendChild(td);
    }
    return {
      row,
      cells,
      set(name, text) {
        const t = text === null || text === undefined ? '' : String(text);
        if (texts[name] !== t) {
          texts[name] = t;
          cells[name].textContent = t;
          if (t.length > 12) cells[name].title = t; // the full text when the cell cuts it
        }
      },
    };
  }

  function actionButton(label, title, onClick) {
    const b = el('button', 'row-action', label);
    b.type = 'button';
    b.title = title;
    b.addEventListener('click', (ev) => {
      ev.stopPropagation();
      onClick();
    });
    return b;
  }

  // ---------------------------------------------------------------- registrations

  const registrations = new LiveTable($('reg-body'), {
    key: (r) => r.id,
    create: (r) => {
      const entry = makeEntry(['user', 'contact', 'source', 'transport', 'expires', 'agent', 'actions']);
      entry.row.dataset.registrationId = r.id;
      entry.row.classList.add('clickable');
      entry.row.title = 'Show the REGISTER ladder';
      entry.row.addEventListener('click', () => openLadder(entry.item.call_id, `REGISTER of ${entry.item.user}`));
      entry.cells.actions.appendChild(
        actionButton('Remove', 'Remove this binding', () => removeRegistration(entry.item)),
      );
      return entry;
    },
    update: (entry, r) => {
      entry.set('user', r.user);
      entry.set('contact', r.contact);
      entry.set('source', r.source);
      entry.set('transport', r.transport);
      entry.set('agent', r.user_agent || '');
      entry.search = [r.user, r.contact, r.source, r.transport, r.user_agent || ''].join(' ').toLowerCase();
      applyFilter(entry);
    },
    tick: (entry, now) => entry.set('expires', clock(entry.item.expires_at - now)),
  });

  let filterText = '';

  function applyFilter(entry) {
    const hide = filterText !== '' && !entry.search.includes(filterText);
    if (entry.row.hidden !== hide) entry.row.hidden = hide;
  }

  function showRegistrationCount() {
    const total = registrations.size;
    let shown = total;
    if (filterText) {
      shown = 0;
      for (const e of registrations.rows.values()) if (!e.row.hidden) shown += 1;
    }
    $('reg-count').textContent = filterText ? `${shown} of ${total}` : String(total);
    $('reg-empty').hidden = shown > 0;
    $('reg-empty').textContent = total > 0 ? 'No registration matches the filter.' : 'No registrations.';
  }

  let filterTimer = null;
  $('reg-filter').addEventListener('input', () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => {
      filterText = $('reg-filter').value.trim().toLowerCase();
      for (const entry of registrations.rows.values()) applyFilter(entry);
      showRegistrationCount();
    }, 120);
  });

  async function removeRegistration(r) {
    if (!window.confirm(`Remove the binding of ${r.user} at ${r.contact}?`)) return;
    try {
      const res = await api(`/api/registrations/${encodeURIComponent(r.id)}`, { method: 'DELETE' });
      if (!res.ok && res.status !== 404) throw new Error(await errorOf(res));
      notice('');
      refreshSoon(0);
    } catch (e) {
      if (!(e instanceof AuthNeeded)) notice(`Could not remove the registration: ${e.message}`);
    }
  }

  // ---------------------------------------------------------------- active calls

  const calls = new LiveTable($('calls-body'), {
    key: (c) => c.id,
    create: (c) => {
      const entry = makeEntry(['caller', 'callee', 'state', 'duration', 'actions']);
      entry.row.dataset.callId = c.id;
      entry.row.classList.add('clickable');
      entry.row.title = 'Show the ladder of this call';
      entry.row.addEventListener('click', () => openLadder(entry.item.id, `${entry.item.caller} → ${entry.item.callee}`));
      entry.cells.actions.appendChild(actionButton('Hang up', 'End this call (BYE both ways)', () => hangUp(entry.item)));
      return entry;
    },
    update: (entry, c) => {
      entry.set('caller', c.caller);
      entry.set('callee', c.callee);
      entry.set('state', c.state);
      entry.cells.state.className = `c-state state-${c.state}`;
    },
    tick: (entry, now) => entry.set('duration', callDuration(entry.item, now)),
  });

  function callDuration(c, now) {
    const from = c.answered_ms || c.started_ms;
    return clock(now - from / 1000);
  }

  async function hangUp(c) {
    if (!window.confirm(`Hang up the call from ${c.caller} to ${c.callee}?`)) return;
    try {
      const res = await api(`/api/calls/${encodeURIComponent(c.id)}`, { method: 'DELETE' });
      if (!res.ok && res.status !== 404) throw new Error(await errorOf(res));
      notice('');
      refreshSoon(0);
    } catch (e) {
      if (!(e instanceof AuthNeeded)) notice(`Could not hang up: ${e.message}`);
    }
  }

  // ---------------------------------------------------------------- recent calls

  const records = new LiveTable($('records-body'), {
    key: (r) => `${r.call_id}\n${r.ended_ms}`,
    create: (r) => {
      const entry = makeEntry(['caller', 'callee', 'started', 'duration', 'disposition', 'status']);
      entry.row.dataset.callId = r.call_id;
      entry.row.classList.add('clickable');
      entry.row.title = 'Show the ladder of this call';
      entry.row.addEventListener('click', () => openLadder(entry.item.call_id, `${entry.item.caller} → ${entry.item.callee}`));
      return entry;
    },
    update: (entry, r) => {
      entry.set('caller', r.caller);
      entry.set('callee', r.callee);
      entry.set('started', when(r.started_ms));
      entry.set('duration', r.answered_ms ? clock(r.duration_s) : '—');
      entry.set('disposition', r.disposition);
      entry.cells.disposition.className = `c-disposition disp-${r.disposition}`;
      entry.set('status', r.status);
    },
  });

  // ---------------------------------------------------------------- refresh loop

  function refreshSoon(delay) {
    clearTimeout(state.timer);
    state.timer = setTimeout(refresh, delay);
  }

  async function refresh() {
    if (state.waitingForToken) return; // resumes when a token is entered
    const live = $('live');
    try {
      const [health, regs, active, recent] = await Promise.all([
        apiJson('/api/health'),
        apiJson('/api/registrations'),
        apiJson('/api/calls'),
        apiJson(`/api/records?limit=${RECENT_LIMIT}`).catch(() => ({ records: [] })),
      ]);
      const list = regs.registrations;
      if (list.length > 0) {
        const r = list[0];
        state.skew = r.expires_at - r.expires_in - Date.now() / 1000;
      }
      registrations.sync(list);
      showRegistrationCount();
      calls.sync(active.calls);
      $('calls-count').textContent = String(active.calls.length);
      $('calls-empty').hidden = active.calls.length > 0;
      records.sync(recent.records);
      $('records-empty').hidden = recent.records.length > 0;
      $('summary').textContent =
        `${health.domain} · v${health.version} · up ${clock(health.uptime_seconds)} · ` +
        `${health.registrations} registrations · ${health.active_calls} calls`;
      live.textContent = 'live';
      live.className = 'live ok';
      if (state.ladder) await refreshLadder();
    } catch (e) {
      if (e instanceof AuthNeeded) {
        live.textContent = 'token needed';
        live.className = 'live bad';
        return;
      }
      live.textContent = `offline: ${e.message}`;
      live.className = 'live bad';
    }
    refreshSoon(REFRESH_MS);
  }

  // Countdowns and call durations, once a second, in place, for the rows in view.
  setInterval(() => {
    registrations.tickVisible();
    calls.tickVisible();
  }, 1000);

  // ---------------------------------------------------------------- ladder diagram

  $('ladder-close').addEventListener('click', () => {
    state.ladder = null;
    $('ladder-panel').hidden = true;
    $('layout').classList.remove('with-ladder');
  });

  $('pcap-link').addEventListener('click', async (ev) => {
    if (!state.token || !state.ladder) return; // without a token the plain link works
    ev.preventDefault();
    try {
      const res = await api(ev.currentTarget.getAttribute('href'));
      if (!res.ok) throw new Error(await errorOf(res));
      const url = URL.createObjectURL(await res.blob());
      const a = el('a');
      a.href = url;
      a.download = ev.currentTarget.getAttribute('download') || 'trace.pcap';
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
    } catch (e) {
      if (!(e instanceof AuthNeeded)) notice(`Could not download the pcap: ${e.message}`);
    }
  });

  async function openLadder(callId, title) {
    if (!callId) return;
    state.ladder = { callId, lastSeq: null, selectedSeq: null };
    $('ladder-title').textContent = title ? `${title} · ${callId}` : callId;
    $('ladder-panel').hidden = false;
    $('layout').classList.add('with-ladder');
    if (!window.matchMedia('(min-width: 1300px)').matches) {
      $('ladder-panel').scrollIntoView({ block: 'start', behavior: 'smooth' });
    }
    const link = $('pcap-link');
    link.setAttribute('href', `/api/trace/${encodeURIComponent(callId)}.pcap`);
    link.setAttribute('download', `${callId.replace(/[^A-Za-z0-9._-]/g, '_')}.pcap`);
    $('ladder-body').replaceChildren(el('p', 'hint', 'Loading…'));
    $('ladder-message').replaceChildren();
    try {
      await refreshLadder();
    } catch (e) {
      if (!(e instanceof AuthNeeded)) $('ladder-body').replaceChildren(el('p', 'error', e.message));
    }
  }

  // Fetches the trace of the open ladder and redraws it when it has new messages.
  async function refreshLadder() {
    const ladder = state.ladder;
    const res = await api(`/api/trace/${encodeURIComponent(ladder.callId)}`);
    if (state.ladder !== ladder) return; // another one was opened meanwhile
    if (res.status === 404) {
      if (ladder.lastSeq === null) {
        $('ladder-body').replaceChildren(
          el('p', 'hint', 'No traced message with this Call-ID: the trace ring has moved on, or the trace is off.'),
        );
        $('pcap-link').hidden = true;
      }
      return;
    }
    if (!res.ok) throw new Error(await errorOf(res));
    const data = await res.json();
    const messages = data.messages;
    const lastSeq = messages.length ? messages[messages.length - 1].seq : null;
    if (lastSeq === ladder.lastSeq) return;
    ladder.lastSeq = lastSeq;
    $('pcap-link').hidden = false;
    drawLadder(messages, ladder);
  }

  // "INVITE", "180 Ringing", "407 Proxy Authentication Required".
  function labelOf(m) {
    if (m.method) return m.method;
    if (m.status) {
      const rest = m.first_line.replace(/^SIP\/2\.0\s+/i, '');
      return rest || String(m.status);
    }
    return m.first_line ? m.first_line.split(' ')[0] : '(unreadable)';
  }

  function kindOf(m) {
    if (!m.status) return 'request';
    if (m.status < 200) return 'provisional';
    if (m.status < 300) return 'success';
    return 'failure';
  }

  // Lifelines: the caller (the first phone that sent us something), switchboard, then every
  // other peer in the order it first appears.
  function participantsOf(messages) {
    const order = [];
    const byAddr = new Map();
    const add = (addr, name) => {
      if (!byAddr.has(addr)) {
        const p = { addr, name: name || '' };
        byAddr.set(addr, p);
        order.push(p);
      } else if (name && !byAddr.get(addr).name) {
        byAddr.get(addr).name = name;
      }
    };
    const first = messages.find((m) => m.direction === 'in');
    if (first) add(first.remote, first.method ? first.from_user : '');
    add('switchboard', 'switchboard');
    for (const m of messages) {
      // A request we received names its sender in From; one we sent names its target in To.
      let name = '';
      if (m.method === 'REGISTER') name = m.to_user;
      else if (m.method && m.direction === 'in') name = m.from_user;
      else if (m.method && m.direction === 'out') name = m.to_user;
      add(m.remote, name);
    }
    return order;
  }

  function drawLadder(messages, ladder) {
    const body = $('ladder-body');
    if (messages.length === 0) {
      body.replaceChildren(el('p', 'hint', 'No messages.'));
      return;
    }
    const parts = participantsOf(messages);
    const col = 170; // between lifelines
    const box = 150; // participant box width
    const left = 70; // room for the time offsets
    const top = 60;
    const rowH = 30;
    const first = left + box / 2;
    const width = first + col * (parts.length - 1) + box / 2 + 8;
    const height = top + rowH * messages.length + 20;
    const x = new Map(parts.map((p, i) => [p.addr, first + col * i]));
    const t0 = messages[0].at_us;

    const root = svg('svg', {
      class: 'ladder',
      width,
      height,
      viewBox: `0 0 ${width} ${height}`,
      role: 'img',
      'aria-label': 'SIP ladder diagram',
    });
    const defs = svg('defs');
    for (const kind of ['request', 'provisional', 'success', 'failure']) {
      const marker = svg('marker', {
        id: `arrowhead-${kind}`,
        viewBox: '0 0 10 10',
        refX: 10,
        refY: 5,
        markerWidth: 8,
        markerHeight: 8,
        orient: 'auto-start-reverse',
      });
      marker.appendChild(svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: `head ${kind}` }));
      defs.appendChild(marker);
    }
    root.appendChild(defs);

    for (const p of parts) {
      const px = x.get(p.addr);
      const g = svg('g', { class: p.addr === 'switchboard' ? 'participant server' : 'participant' });
      g.appendChild(svg('rect', { x: px - box / 2, y: 4, width: box, height: 40, rx: 6 }));
      g.appendChild(svg('text', { x: px, y: 21, class: 'name' }, p.name || 'phone'));
      if (p.addr !== 'switchboard') g.appendChild(svg('text', { x: px, y: 37, class: 'addr' }, p.addr));
      g.appendChild(svg('line', { x1: px, y1: 44, x2: px, y2: height - 6, class: 'lifeline' }));
      root.appendChild(g);
    }

    const message = $('ladder-message');
    message.replaceChildren();
    let selected = null;

    messages.forEach((m, i) => {
      const y = top + rowH * i + 18;
      const [from, to] = m.direction === 'in' ? [m.remote, 'switchboard'] : ['switchboard', m.remote];
      const x1 = x.get(from);
      const x2 = x.get(to);
      const label = labelOf(m);
      const kind = kindOf(m);
      const g = svg('g', { class: `arrow ${kind}`, 'data-label': label, 'data-seq': m.seq, tabindex: 0 });
      g.appendChild(svg('rect', {
        class: 'hit',
        x: Math.min(x1, x2) - 4,
        y: y - 22,
        width: Math.abs(x2 - x1) + 8,
        height: rowH - 4,
      }));
      g.appendChild(svg('line', { x1, y1: y, x2, y2: y, 'marker-end': `url(#arrowhead-${kind})` }));
      g.appendChild(svg('text', { x: (x1 + x2) / 2, y: y - 6, class: 'label' }, label));
      const offset = `+${((m.at_us - t0) / 1e6).toFixed(3)} s`;
      g.appendChild(svg('text', { x: left - 8, y: y + 4, class: 'time' }, offset));
      const title = svg('title', {}, `${m.first_line}\n${m.proto.toUpperCase()} ${from} → ${to}`);
      g.appendChild(title);

      const show = () => {
        if (selected) selected.classList.remove('selected');
        if (selected === g) {
          selected = null;
          ladder.selectedSeq = null;
          message.replaceChildren();
          return;
        }
        selected = g;
        ladder.selectedSeq = m.seq;
        g.classList.add('selected');
        const head = el(
          'p',
          'message-head',
          `#${m.seq} ${offset} · ${m.direction === 'in' ? 'received from' : 'sent to'} ${m.remote} over ${m.proto.toUpperCase()} · ${new Date(m.at_us / 1000).toLocaleTimeString()}`,
        );
        const pre = el('pre', 'sip-message', m.text);
        message.replaceChildren(head, pre);
      };
      g.addEventListener('click', show);
      g.addEventListener('keydown', (ev) => {
        if (ev.key === 'Enter' || ev.key === ' ') {
          ev.preventDefault();
          show();
        }
      });
      root.appendChild(g);
      if (m.seq === ladder.selectedSeq) {
        ladder.selectedSeq = null;
        show();
      }
    });

    body.replaceChildren(root);
  }

  refreshSoon(0);
})();
