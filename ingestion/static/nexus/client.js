/*! nexus-client 1.0.0: window.NexusIngest, the browser half of "nothing lost". */
// Hand-written ES2017, no dependencies. Every transcript is written to an outbox in
// localStorage before it is sent; only the service's 2xx or a permanent refusal takes it out.
// README "The browser client" states what it guarantees and what it does not.
(function (w) {
  'use strict';
  if (w.NexusIngest) return; // loaded twice: keep the first, its timers and listeners
  var VERSION = '1.0.0';
  var P = 'nexus-ingest:';
  var BOX = P + 'outbox:';
  var LS = 'localStorage';
  var SS = 'sessionStorage';
  // Browsers refuse a keepalive body over 64 KiB: a bigger one is sent by a plain fetch while
  // the page lives and otherwise waits in the outbox for the next page view.
  var KEEPALIVE_MAX = 65536;
  // Backoff with full jitter, base 1 s, cap 60 s: a fleet of widgets that lost the service
  // together must not come back together (SPEC §12: Retry-After is honoured as a floor).
  var BASE = 1000;
  var CAP = 60000;
  // A fetch that fails at the network level while the browser says it is online (a service
  // that is down, or a CORS refusal, which JavaScript cannot tell apart) is retried this many
  // times in one page view, then reported and parked until the next record(), flush(),
  // `online` or page view: it stays in the outbox, nothing is given up.
  var MAX_UNREACHABLE = 6;
  var CONTEXT = ['constructorId', 'pageContext', 'isReturningUser', 'consentGiven'];
  var memory = {};
  var degraded = false;
  var noop = function () {};

  function warn(text) {
    try { console.warn('[nexus] ' + text); } catch (e) { /* no console */ }
  }
  function degrade() {
    if (!degraded) warn('storage is full or blocked: the outbox is kept in memory only and is lost with this page');
    degraded = true;
  }
  // Storage that may be missing, blocked (a SecurityError on access) or full (a QuotaExceeded
  // on write). A value in memory wins over the stored one.
  function area(name) { return w[name]; }
  function get(name, key) {
    if (name + key in memory) return memory[name + key];
    try { return area(name).getItem(key); } catch (e) { degrade(); return null; }
  }
  function set(name, key, value) {
    try { area(name).setItem(key, value); delete memory[name + key]; } catch (e) { degrade(); memory[name + key] = value; }
  }
  function remove(name, key) {
    delete memory[name + key];
    try { area(name).removeItem(key); } catch (e) { degrade(); }
  }
  function keys(prefix) {
    var found = {};
    var k;
    for (k in memory) if (k.indexOf(LS + prefix) === 0) found[k.slice(LS.length)] = 1;
    try {
      var s = area(LS);
      for (var i = 0; i < s.length; i++) if ((k = s.key(i)).indexOf(prefix) === 0) found[k] = 1;
    } catch (e) { degrade(); }
    return Object.keys(found);
  }
  function random() {
    var a = new Uint32Array(2);
    try { w.crypto.getRandomValues(a); } catch (e) { a[0] = Math.random() * 4e9; a[1] = Math.random() * 4e9; }
    return a[0].toString(36) + a[1].toString(36);
  }
  function kept(name, key, make) {
    var value = get(name, key);
    if (!value) set(name, key, (value = make()));
    return value;
  }
  function read(key) {
    try { return JSON.parse(get(LS, key)); } catch (e) { return null; }
  }
  function retryAfter(value) {
    if (!value) return 0;
    var s = Number(value);
    return isNaN(s) ? (Date.parse(value) - Date.now()) || 0 : s * 1000;
  }
  function retryable(status) {
    return !status || status === 408 || status === 429 || status >= 500;
  }
  function stub(text) {
    warn(text);
    return {
      record: function () { var p = Promise.reject(new Error(text)); p.catch(noop); return p; },
      pending: function () { return 0; },
      flush: function () { return Promise.resolve(0); }
    };
  }

  function connect(options) {
    var o = options || {};
    if (!o.endpoint || typeof fetch !== 'function') return stub('connect() needs an endpoint and a browser with fetch');
    var endpoint = String(o.endpoint);
    var tenant = o.tenant ? String(o.tenant) : '';
    var prefix = BOX + endpoint + '|' + tenant + '|';
    var sessionId = String(o.sessionId || kept(SS, P + 'session', function () { return 'nx_' + Date.now().toString(36) + '_' + random(); }));
    var fingerprint = String(o.fingerprint || kept(LS, P + 'fingerprint', function () { return 'nxfp_' + random() + random(); }));
    var base = o.context || {};
    var onError = typeof o.onError === 'function' ? o.onError : noop;
    var inflight = {};
    var timers = {};
    var tries = {};
    var unreachable = {};
    var waiters = {};
    var parked = {};
    var gone = false;

    function body(messages, context) {
      var b = { messages: [], sessionId: sessionId, fingerprint: fingerprint };
      messages.forEach(function (m) {
        // Blank turns (an empty stream) carry nothing; the service drops them too.
        if (m && typeof m.content === 'string' && m.content.trim()) b.messages.push({ role: m.role, content: m.content });
      });
      [base, context || {}].forEach(function (c) {
        CONTEXT.forEach(function (k) { if (c[k] != null) b[k] = c[k]; }); // null: not known, so absent
      });
      b.metadata = { url: location.origin + location.pathname, timestamp: new Date().toISOString() };
      return JSON.stringify(b);
    }

    function settle(batch, ok, value) {
      batch.forEach(function (waiter) { waiter[ok ? 0 : 1](value); });
    }

    // Send the session's latest transcript unless one is in flight; `now` ignores a backoff
    // timer (flush, online, page hidden); `leaving` sends only what keepalive can carry.
    function send(key, now, leaving) {
      if (inflight[key] || (timers[key] && !now)) return inflight[key];
      // Offline, nothing is sent (Chromium may hold such a request and deliver it late, after a
      // newer one): the `online` event sends the latest.
      if (navigator.onLine === false) return;
      var entry = read(key);
      if (!entry || !entry.b) { remove(LS, key); return; }
      var size = new Blob([entry.b]).size;
      if (leaving && size > KEEPALIVE_MAX) return;
      clearTimeout(timers[key]);
      delete timers[key];
      var batch = waiters[key] || [];
      waiters[key] = [];
      var headers = { 'Content-Type': 'application/json' };
      if (entry.t) headers['X-Tenant-Id'] = entry.t;
      var request = { method: 'POST', headers: headers, body: entry.b, credentials: 'omit', keepalive: size <= KEEPALIVE_MAX };
      return (inflight[key] = Promise.resolve()
        .then(function () { return fetch(entry.e, request); })
        .then(function (r) {
          return r.text().then(function (text) { return [r.status, text, r.headers.get('Retry-After')]; });
        })
        .then(function (got) {
          var parsed;
          try { parsed = JSON.parse(got[1]); } catch (e) { parsed = got[1]; }
          done(key, entry, batch, got[0], parsed, got[2]);
        }, function () { done(key, entry, batch, 0); }));
    }

    function done(key, entry, batch, status, answer, after) {
      // The page is going away: Chromium fails its fetches' promises then, but a keepalive
      // request goes on. Sending it again now would only make a duplicate; the entry stays in
      // the outbox (still "in flight") for the next page view to confirm.
      if (!status && gone) { parked[key] = 1; return; }
      delete inflight[key];
      var current = read(key);
      var same = current && current.id === entry.id;
      if (!retryable(status)) {
        tries[key] = unreachable[key] = 0;
        if (same) remove(LS, key);
        if (status < 300) {
          var a = answer || {};
          settle(batch, 1, { queueId: a.queueId, duplicate: !!a.duplicate, stale: !!a.stale, continued: !!a.continued });
        } else {
          warn('the service refused a transcript (HTTP ' + status + '); it is dropped from the outbox');
          var error = new Error('nexus: transcript refused with HTTP ' + status);
          error.status = status;
          error.body = answer;
          settle(batch, 0, error);
        }
        if (!same) send(key); // a newer transcript arrived meanwhile
        return;
      }
      waiters[key] = batch.concat(waiters[key] || []);
      if (!status && navigator.onLine === false) return; // the `online` event sends it
      var n = (tries[key] = (tries[key] || 0) + 1);
      if (!status && (unreachable[key] = (unreachable[key] || 0) + 1) >= MAX_UNREACHABLE) {
        if (unreachable[key] === MAX_UNREACHABLE) {
          warn('the service is unreachable or refuses this origin (CORS); the transcript stays in the outbox');
          try { onError({ type: 'unreachable', sessionId: entry.s, attempts: n }); } catch (e) { /* host's */ }
        }
        return;
      }
      var delay = Math.max(Math.random() * Math.min(CAP, BASE * Math.pow(2, n - 1)), retryAfter(after));
      timers[key] = setTimeout(function () { delete timers[key]; send(key); }, delay);
    }

    function mine() { return keys(prefix); }

    function flush(leaving) {
      return Promise.all(mine().map(function (key) { return send(key, true, leaving); })).then(function () {
        return mine().length;
      });
    }

    function record(messages, context) {
      var promise = new Promise(function (resolve, reject) {
        var key = prefix + sessionId;
        var entry = { e: endpoint, t: tenant, s: sessionId, b: body(messages, context), id: random() };
        set(LS, key, JSON.stringify(entry));
        (waiters[key] = waiters[key] || []).push([resolve, reject]);
        unreachable[key] = 0;
        send(key);
      });
      promise.catch(noop); // a host page that ignores the Promise gets no unhandled rejection
      return promise;
    }

    function leave() { flush(true).catch(noop); }
    w.addEventListener('pagehide', function () { leave(); gone = true; });
    w.addEventListener('pageshow', function (event) { // back from the back-forward cache
      if (!event.persisted) return;
      gone = false;
      for (var key in parked) delete inflight[key];
      parked = {};
      flush().catch(noop);
    });
    document.addEventListener('visibilitychange', function () { if (document.visibilityState === 'hidden') leave(); });
    w.addEventListener('online', function () { unreachable = {}; flush().catch(noop); });
    setTimeout(function () { flush().catch(noop); }, 0); // what earlier page views left

    return {
      record: function (messages, context) {
        try { return record(messages, context); } catch (e) { return stub('record() failed: ' + e).record(); }
      },
      pending: function () {
        try { return mine().length; } catch (e) { return 0; }
      },
      flush: function () {
        try { return flush(); } catch (e) { return Promise.resolve(0); }
      },
      sessionId: sessionId
    };
  }

  w.NexusIngest = {
    version: VERSION,
    connect: function (options) {
      try { return connect(options); } catch (e) { return stub('connect() failed: ' + e); }
    }
  };
})(window);
