/* Tandem console. Plain JavaScript talking to DataFlux Func's management
 * API (/api/v1/<resource>/do/list|add, /:id/do/get|modify|delete), as every
 * client does, plus the few /api/v1/console/* paths only a page needs. The
 * session is an HttpOnly cookie; every request carries the CSRF value the
 * sign-in answered. Every piece of data reaches the page as a text node
 * (el() below): nothing user-supplied is ever parsed as HTML. */
"use strict";

(function () {
  var state = { csrf: "", user: "", scope: "", timer: 0, view: "", navAt: 0, ready: "", boot: null };
  var app = document.getElementById("app");
  var toasts = [];

  /* ---- DOM helpers ---------------------------------------------------- */
  function el(tag, attrs) {
    var e = document.createElement(tag);
    if (attrs)
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === undefined || v === null || v === false) return;
        if (k === "text") e.textContent = String(v);
        else if (k === "class") e.className = v;
        else if (k.slice(0, 2) === "on") e.addEventListener(k.slice(2), v);
        else if (k === "value") e.value = v;
        else e.setAttribute(k, v === true ? "" : String(v));
      });
    for (var i = 2; i < arguments.length; i++) add(e, arguments[i]);
    return e;
  }
  function add(parent, c) {
    if (c === undefined || c === null || c === false) return;
    if (Array.isArray(c)) c.forEach(function (x) { add(parent, x); });
    else if (c instanceof Node) parent.appendChild(c);
    else parent.appendChild(document.createTextNode(String(c)));
  }
  function fill(parent, children) { parent.replaceChildren.apply(parent, children); }
  function badge(text, cls) { return el("span", { class: "badge " + (cls || text), text: text }); }
  function th(names) { return el("thead", null, el("tr", null, names.map(function (h) { return el("th", { text: h }); }))); }
  function fmtTime(v) {
    if (v === null || v === undefined || v === "") return "";
    var d = new Date(v);
    if (isNaN(d)) return String(v);
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  }
  function ago(ms) {
    if (ms === null || ms === undefined) return "";
    var s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    return s < 60 ? s + " s ago" : s < 3600 ? Math.round(s / 60) + " min ago" : Math.round(s / 3600) + " h ago";
  }
  function pretty(v) { return typeof v === "string" ? v : JSON.stringify(v, null, 2); }
  /* DFF keeps kwargs, results and chains as JSON text: shown parsed when it is */
  function jsonText(v) {
    if (typeof v !== "string") return v;
    try { return JSON.parse(v); } catch (e) { return v; }
  }
  /* A toast belongs to the page it was raised on: route() clears them, so
   * one page's error never shows on the next. They sit in the page's flow,
   * at the top of <main> (sticky while it scrolls), so a message never
   * covers the text or the button it is about. */
  function toast(msg, bad) {
    var box = document.getElementById("toasts");
    if (!box) {
      var main = document.getElementById("main");
      box = el("div", { id: "toasts", "aria-live": "polite" });
      if (main) main.insertBefore(box, main.firstChild);
      else document.body.appendChild(box);
    }
    var t = el("div", { class: "toast" + (bad ? " bad" : ""), role: bad ? "alert" : "status", text: msg });
    box.appendChild(t);
    toasts.push(t);
    setTimeout(function () { t.remove(); }, bad ? 6000 : 2500);
  }
  function clearToasts() { toasts.forEach(function (t) { t.remove(); }); toasts = []; }
  function parseJSON(text, what) {
    if (!text.trim()) return {};
    try { return JSON.parse(text); } catch (e) { throw new Error(what + " is not JSON: " + e.message); }
  }
  /* The page's main content is on screen: tests/ui reads data-ready(-ms)
   * to time "usable" (navigation to content) without a timed assertion.
   * Marked after the next frame (requestAnimationFrame, then a task: the
   * frame holding the content has been painted by then), with a timer as a
   * fallback for a hidden tab, where frames do not run. */
  function ready(view) {
    if (state.view !== view || state.ready === view) return;
    state.ready = view;
    /* when the content went into the DOM, for telling script from paint */
    document.body.setAttribute("data-drawn-ms", (performance.now() - state.navAt).toFixed(1));
    var done = false;
    function mark() {
      if (done || state.view !== view || state.ready !== view) return;
      done = true;
      document.body.setAttribute("data-ready-ms", (performance.now() - state.navAt).toFixed(1));
      document.body.setAttribute("data-ready", view);
    }
    requestAnimationFrame(function () { setTimeout(mark, 0); });
    setTimeout(mark, 500);
  }

  /* ---- the API -------------------------------------------------------- */
  /* BOOT: the page's first call, which index.html preloads (<link
   * rel=preload>) while the scripts load; made exactly as the preload
   * (credentials "include", no header) so the browser hands over that
   * answer instead of asking again. */
  var BOOT = "/api/v1/console/do/session?with=cluster";
  function api(method, path, body) {
    var opts = path === BOOT ? { method: method, credentials: "include" }
      : { method: method, credentials: "same-origin", headers: { "X-Tandem-Csrf": state.csrf } };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(path, opts).then(function (resp) {
      return resp.text().then(function (text) {
        var j = null;
        try { j = JSON.parse(text); } catch (e) { /* not an envelope */ }
        if (resp.status === 401 && path.indexOf("/api/v1/console/do/sign-in") !== 0) {
          state.csrf = "";
          signIn("Your session has ended: sign in again.");
          throw new Error("signed out");
        }
        if (!resp.ok || (j && j.ok === false)) {
          var err = new Error((j && j.message) || resp.status + " " + resp.statusText);
          err.status = resp.status;
          err.detail = j && j.detail;
          err.reason = j && j.reason;
          throw err;
        }
        return j && typeof j === "object" && "data" in j ? j.data : j;
      });
    });
  }
  function fail(e) { if (e.message !== "signed out") toast(e.message, true); }
  function items(d) { return Array.isArray(d) ? d : d && Array.isArray(d.items) ? d.items : []; }
  function enc(s) { return encodeURIComponent(s); }
  /* DFF's paths of one resource */
  function res(wire) {
    var base = "/api/v1/" + wire;
    return {
      list: function (q) { return api("GET", base + "/do/list?pageSize=1000" + (q ? "&" + q : "")); },
      get: function (id) { return api("GET", base + "/" + enc(id) + "/do/get"); },
      add: function (data, extra) { return api("POST", base + "/do/add", Object.assign({ data: data }, extra || {})); },
      modify: function (id, data) { return api("POST", base + "/" + enc(id) + "/do/modify", { data: data }); },
      del: function (id) { return api("GET", base + "/" + enc(id) + "/do/delete"); },
    };
  }
  function duplicate(e) { return e.status === 409 || e.reason === "EClientDuplicated" || /uplicate/.test(e.message); }

  /* ---- sign-in -------------------------------------------------------- */
  function signIn(message) {
    clearInterval(state.timer);
    /* a poll that was already in flight may answer 401 after a sign-out:
     * keep the message the person saw */
    if (state.view === "signin" && document.getElementById("signin-error")) return;
    state.view = "signin";
    var msg = el("p", { class: "err", id: "signin-error", role: "alert", text: message || "" });
    var user = el("input", { id: "username", name: "username", autocomplete: "username", required: true });
    var pw = el("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
    var form = el("form", {
      class: "panel signin",
      onsubmit: function (ev) {
        ev.preventDefault();
        msg.textContent = "";
        api("POST", "/api/v1/console/do/sign-in", { username: user.value, password: pw.value })
          .then(function (d) { session(d); state.view = ""; route(); })
          .catch(function (e) { msg.textContent = e.message; });
      },
    },
      el("h1", { text: "Tandem" }),
      el("label", null, "User", user),
      el("label", null, "Password", pw),
      el("button", { class: "primary", type: "submit", id: "signin" }, "Sign in"),
      msg);
    app.replaceChildren(form);
    user.focus();
  }
  function session(d) {
    state.csrf = d.csrf;
    state.user = d.username;
    /* the server refuses a call-only user every admin path anyway; the
     * page only avoids showing pages that could not work */
    state.scope = d.scope === "call" ? "call" : "admin";
  }

  /* ---- the shell and routing ------------------------------------------ */
  /* [hash, title, view, who may see it] */
  var VIEWS = [
    ["overview", "Overview", viewOverview, "admin"],
    ["scripts", "Scripts", viewScripts, "admin"],
    ["sync-apis", "Sync APIs", function (m) { viewApis(m, API_KINDS.sync); }, "admin"],
    ["async-apis", "Async APIs", function (m) { viewApis(m, API_KINDS.async); }, "admin"],
    ["tasks", "Task records", viewTasks, "admin"],
    ["cron", "Cron jobs", viewCron, "admin"],
    ["connectors", "Connectors", viewConnectors, "admin"],
    ["env", "Env variables", viewEnv, "admin"],
    ["keys", "Access keys", viewKeys, "admin"],
    ["users", "Users", viewUsers, "admin"],
    ["call", "Call", viewCall, "call"],
  ];
  function route() {
    if (!state.csrf) {
      /* the session (its CSRF value) comes before any other call. The
       * first one, preloaded by index.html, brings the cluster's state
       * along: the overview draws from it without a second round trip.
       * If that part fails (Redis away), the plain session still signs
       * the page in. */
      var first = !state.booted;
      state.booted = true;
      (first ? api("GET", BOOT).catch(function (e) {
        if (e.message === "signed out") throw e;
        return api("GET", "/api/v1/console/do/session");
      }) : api("GET", "/api/v1/console/do/session"))
        .then(function (d) {
          session(d);
          var name = location.hash.replace(/^#\/?/, "").split("/")[0];
          state.boot = (name === "" || name === "overview") && d.cluster || null;
          state.view = "";
          route();
        })
        .catch(function (e) {
          /* a 401 has shown the sign-in already; anything else says why */
          if (e.message !== "signed out") signIn("The server could not check your session: " + e.message);
        });
      return;
    }
    /* the first page is timed from the navigation itself (performance.now()
     * counts from it), later ones from the hash change */
    state.navAt = state.navAt === 0 && !state.routed ? 0 : performance.now();
    state.routed = true;
    clearToasts();
    var mine = VIEWS.filter(function (x) { return state.scope === "admin" || x[3] === "call"; });
    var hash = location.hash.replace(/^#\/?/, "").split("/");
    var name = hash[0] || mine[0][0];
    var v = mine.filter(function (x) { return x[0] === name; })[0] || mine[0];
    clearInterval(state.timer);
    state.view = v[0];
    state.ready = "";
    document.body.removeAttribute("data-ready");
    var main = el("main", { id: "main" });
    var nav = el("nav", { "aria-label": "sections" },
      el("div", { class: "brand", text: "Tandem" }),
      mine.map(function (x) {
        return el("a", { href: "#/" + x[0], id: "nav-" + x[0], class: x[0] === v[0] ? "on" : "", text: x[1] });
      }),
      el("div", { class: "who" }, el("div", { id: "who", text: "Signed in as " + state.user + (state.scope === "call" ? " (call only)" : "") }),
        el("button", { id: "signout", onclick: signOut }, "Sign out")));
    app.replaceChildren(el("div", { class: "shell" }, nav, main));
    v[2](main, hash.slice(1));
  }
  function signOut() {
    clearInterval(state.timer);
    state.view = "";
    clearToasts();
    api("POST", "/api/v1/console/do/sign-out", {})
      .catch(function () { /* the cookie is gone either way */ })
      .then(function () { state.csrf = ""; signIn("Signed out."); });
  }
  window.addEventListener("hashchange", route);

  /* ---- Overview ------------------------------------------------------- */
  function metricsOf(text) {
    var m = {};
    text.split("\n").forEach(function (line) {
      if (!line || line[0] === "#") return;
      var sp = line.lastIndexOf(" ");
      var k = line.slice(0, sp), v = Number(line.slice(sp + 1));
      if (!isNaN(v)) m[k] = v;
    });
    return m;
  }
  function sum(m, prefix) {
    return Object.keys(m).reduce(function (a, k) { return k.indexOf(prefix) === 0 ? a + m[k] : a; }, 0);
  }
  function viewOverview(main) {
    var body = el("div", { id: "overview" });
    add(main, [el("h1", null, "Overview ", el("span", { class: "muted", id: "ov-updated" })), body]);
    var prev = null, rate = null, errs = null;
    /* calls/s and errors/s: the difference of two /metrics readings */
    function rates(text) {
      var m = metricsOf(text), now = Date.now();
      var calls = sum(m, "tandem_calls_total"), bad = sum(m, 'tandem_calls_total{outcome="failure"}') + sum(m, 'tandem_calls_total{outcome="timeout"}') + sum(m, 'tandem_calls_total{outcome="crashed"}');
      if (prev && now > prev.t) {
        rate = Math.max(0, (calls - prev.calls) / ((now - prev.t) / 1000));
        errs = Math.max(0, (bad - prev.bad) / ((now - prev.t) / 1000));
      }
      prev = { t: now, calls: calls, bad: bad };
    }
    function load() {
      /* the first draw uses the cluster state the session call brought
       * (route()) and does not wait on /metrics: there is no rate before
       * a second reading anyway; later ones draw both at once */
      var boot = state.boot;
      state.boot = null;
      var metrics = fetch("/metrics", { credentials: "same-origin" }).then(function (r) { return r.ok ? r.text() : ""; }).catch(function () { return ""; });
      var waitMetrics = prev !== null;
      if (!waitMetrics) metrics.then(rates);
      Promise.all([
        boot ? boot : api("GET", "/api/v1/console/cluster"),
        waitMetrics ? metrics : "",
      ]).then(function (res) {
        if (state.view !== "overview") return;
        var c = res[0];
        if (res[1]) rates(res[1]);
        renderOverview(body, c, rate, errs);
        document.getElementById("ov-updated").textContent = "updated " + new Date().toLocaleTimeString();
        ready("overview");
      }).catch(function (e) {
        /* during a failover the VIP may answer nothing for a moment: keep polling */
        var u = document.getElementById("ov-updated");
        if (u) u.textContent = "cannot reach the server (" + e.message + "); retrying";
      });
    }
    load();
    state.timer = setInterval(load, 2000);
  }
  var ROLE_NAMES = { master: "primary", backup: "backup", fault: "fault" };
  function maintButton(n, s) {
    var on = !s.maint;
    return el("button", { class: on ? "maint-toggle" : "maint-toggle danger", id: "maint-" + n, onclick: function () {
      var what = on
        ? "Put " + n + " in maintenance: " + (s.role === "master" ? "it hands the VIP to its peer first (refused if the peer is not ready), then " : "") + "it stays out of the pair until maintenance ends. Go on?"
        : "End maintenance on " + n + ": it rejoins the pair as a backup. Go on?";
      if (!confirm(what)) return;
      api("POST", "/api/v1/console/do/maintenance", { node: n, on: on })
        .then(function () { toast("Maintenance " + (on ? "on" : "off") + " requested: " + n + "'s supervisor answers within a second"); })
        .catch(fail);
    } }, on ? "Maintenance…" : "End maintenance");
  }
  function requestResult(id, what, res) {
    return res ? el("p", { id: id, class: res.ok ? "okc" : "err",
      text: "Last " + what + " request (" + res.node + ", " + ago(res.at) + "): " + (res.ok ? res.message || (res.maintenance !== undefined ? "maintenance " + (res.maintenance ? "on" : "off") : "done") + (res.epoch !== undefined ? " at epoch " + res.epoch : "") : res.error) }) : null;
  }
  function renderOverview(body, c, rate, errs) {
    var names = Object.keys(c.nodes || {}).sort();
    var cards = names.map(function (n) {
      var s = c.nodes[n] || {};
      var primary = s.role === "master";
      /* a node in maintenance stands out of the pair: keepalived calls
       * that "fault", which it is not; a primary still handing over
       * shows both */
      var role = s.maint && !primary ? "maintenance" : ROLE_NAMES[s.role] || s.role || "?";
      return el("div", { class: "panel node", id: "node-" + n, "data-role": role, "data-maint": s.maint ? "on" : "off" },
        el("h3", null, n + " ", badge(role, role === "maintenance" ? "warn" : role), s.maint && primary ? [" ", badge("maintenance", "warn")] : null,
          primary ? el("span", { class: "muted", text: " holds the VIP" }) : null),
        el("div", { class: "kv" },
          el("span", { text: "epoch" }), el("span", { class: "epoch", text: s.epoch }),
          el("span", { text: "heartbeat" }), el("span", { text: s.ts ? ago(s.ts) : "" }),
          el("span", { text: "supervisor pid" }), el("span", { text: s.pid }),
          el("span", { text: "warm standby" }), el("span", { text: s.warm ? "yes" : "no" })),
        el("p", null, maintButton(n, s)));
    });
    if (!names.length)
      cards = [el("div", { class: "panel" }, el("p", { class: "muted", text: "No supervisor reports to Redis: a single stack without failover (appliance/local)." }))];
    var hb = c.heartbeats || {};
    var workers = (hb.worker || []).reduce(function (a, w) { return a + (w.children || 0); }, 0);
    var q = c.queues || {};
    var qtotal = Object.keys(q).reduce(function (a, k) { return a + q[k]; }, 0);
    var stats = el("div", { class: "panel stats" },
      stat("served by", c.node, "served-by"),
      stat("epoch", c.epoch < 0 ? "none yet" : c.epoch, "cluster-epoch"),
      stat("servers", (hb.server || []).length),
      stat("workers", (hb.worker || []).length + " (" + workers + " children)", "workers"),
      stat("beat", (hb.beat || []).length),
      stat("queued", qtotal, "queued"),
      stat("calls/s", rate === null ? "…" : rate.toFixed(1)),
      stat("errors/s", errs === null ? "…" : errs.toFixed(1)),
      stat("cron", c.cronPaused ? "paused" : "running", "cron-state"));
    var queues = el("p", { class: "muted mono" }, Object.keys(q).filter(function (k) { return q[k]; })
      .map(function (k) { return k + "=" + q[k] + "  "; }).join("") || "all queues empty");
    var ev = el("table", { id: "failover-events" }, th(["at", "node", "from", "to", "epoch", "cause"]),
      el("tbody", null, (c.failoverEvents || []).map(function (e) {
        return el("tr", null, el("td", { class: "nowrap", text: fmtTime(e.at) }), el("td", { class: "nowrap", text: e.node }),
          el("td", { text: e.from_state }), el("td", { text: e.to_state }), el("td", { text: e.epoch }),
          el("td", { text: e.cause }));
      })));
    var primaryNode = names.filter(function (n) { return (c.nodes[n] || {}).role === "master"; })[0];
    var actions = el("div", { class: "panel" },
      el("h2", { text: "Failover" }),
      primaryNode ? el("p", null,
        el("button", { class: "danger", id: "switchover", disabled: !!c.switchoverPending, onclick: function () {
          if (!confirm("Switch over: " + primaryNode + " hands the VIP and the stack to its peer. Calls in flight on " + primaryNode + " finish or are retried; a sub-second gap is expected. Go on?")) return;
          api("POST", "/api/v1/console/do/switchover", { primary: primaryNode })
            .then(function () { toast("Switchover requested: " + primaryNode + "'s supervisor hands over within a second"); })
            .catch(fail);
        } }, "Switch over from " + primaryNode), " ",
        el("span", { class: "muted", text: c.switchoverPending ? "request waiting for the primary's supervisor…" : "Refused unless the peer is ready (as `tandemctl switchover` without --force). Maintenance: the button on each node (as `tandemctl maintenance on|off` there)." }))
        : el("p", { class: "muted", text: "No primary reports to Redis: switchover needs the two-node appliance." }),
      c.maintenancePending ? el("p", { class: "muted", id: "maint-pending", text: "maintenance request for " + c.maintenancePending.node + " waiting for its supervisor…" }) : null,
      requestResult("switchover-result", "switchover", c.switchoverResult),
      requestResult("maint-result", "maintenance", c.maintenanceResult));
    body.replaceChildren(stats, el("div", { class: "nodes" }, cards), queues, actions,
      el("div", { class: "panel" }, el("h2", { text: "Failover timeline" }),
        (c.failoverEvents || []).length ? ev : el("p", { class: "muted", text: "No failover events recorded." })));
  }
  function stat(label, value, id) {
    return el("div", { class: "stat" }, el("b", { id: id, text: value === undefined ? "" : value }), el("span", { class: "muted", text: label }));
  }

  /* ---- Scripts -------------------------------------------------------- */
  var SCRIPTS = res("scripts");
  function viewScripts(main, args) {
    var list = el("tbody");
    var sid = el("input", { id: "new-script-id", placeholder: "demo__hello" });
    var stitle = el("input", { id: "new-script-title", placeholder: "title" });
    var detail = el("div", { id: "script-detail" });
    add(main, [el("h1", { text: "Scripts" }),
      el("div", { class: "panel" },
        el("form", { onsubmit: function (ev) {
          ev.preventDefault();
          var id = sid.value.trim(), set = id.split("__")[0];
          /* DFF keeps scripts in script sets: make the set when it is new */
          res("script-sets").add({ id: set, title: set })
            .catch(function (e) { if (!duplicate(e)) throw e; })
            .then(function () {
              return SCRIPTS.add({ id: id, title: stitle.value,
                codeDraft: "import DFF\n\n@DFF.API('Hello')\ndef hello(name='world'):\n    return 'hello ' + name\n" });
            })
            .then(function () { location.hash = "#/scripts/" + enc(id); }).catch(fail);
        } }, el("label", null, "Script id (<set>__<name>)", sid), el("label", null, "Title", stitle),
          el("button", { class: "primary", type: "submit", id: "new-script" }, "New script"))),
      el("div", { class: "row" },
        el("div", { class: "panel" }, el("table", { id: "scripts" }, th(["script", "title", "published"]), list)),
        el("div", { class: "grow" }, detail))]);
    SCRIPTS.list().then(function (d) {
      fill(list, items(d).map(function (s) {
        return el("tr", { class: "click" + (args[0] === s.id ? " sel" : ""), tabindex: 0,
          onclick: function () { location.hash = "#/scripts/" + enc(s.id); },
          onkeydown: function (ev) { if (ev.key === "Enter") location.hash = "#/scripts/" + enc(s.id); } },
        el("td", { class: "mono", text: s.id }), el("td", { class: "script-title", text: s.title }),
        el("td", { text: s.publishVersion ? "v" + s.publishVersion : "draft only" }));
      }));
      if (!args[0]) ready("scripts");
    }).catch(fail);
    if (args[0]) scriptDetail(detail, decodeURIComponent(args[0]));
  }
  function funcNames(code) {
    var out = [], re = /^def\s+([A-Za-z_]\w*)\s*\(/gm, m;
    while ((m = re.exec(code)) !== null) if (m[1][0] !== "_") out.push(m[1]);
    return out;
  }
  function scriptDetail(box, id) {
    SCRIPTS.get(id).then(function (s) {
      var ed;
      var fsel = el("select", { id: "run-func" });
      var kw = el("textarea", { class: "json", id: "run-kwargs", text: "{}" });
      var out = el("div", { id: "run-output" });
      var pubmsg = el("div", { id: "publish-result" });
      function refreshFuncs() {
        var cur = fsel.value;
        fill(fsel, funcNames(ed.value).map(function (f) { return el("option", { value: f, text: f }); }));
        if (cur) fsel.value = cur;
      }
      function save() { return SCRIPTS.modify(id, { codeDraft: ed.value }); }
      var diffBox = el("div", { class: "diff", id: "diff" });
      add(box.replaceChildren() || box, [
        el("div", { class: "panel" },
          el("h2", null, el("span", { class: "mono", text: s.id }), " ", el("span", { id: "script-heading", text: s.title || "" }),
            " ", badge(s.publishVersion ? "published v" + s.publishVersion : "draft only", s.publishVersion ? "on" : "warn")),
          (ed = TandemEditor.create(el("div"), s.codeDraft || "")).el,
          el("div", { class: "row" },
            el("button", { id: "save", onclick: function () { save().then(function () { toast("Draft saved"); }).catch(fail); } }, "Save draft"),
            el("button", { class: "primary", id: "publish", onclick: function () {
              pubmsg.replaceChildren();
              save().then(function () { return api("POST", "/api/v1/scripts/" + enc(id) + "/do/publish"); })
                .then(function (d) {
                  var v = d.publishVersion || d.publish_version;
                  s.code = ed.value;
                  add(pubmsg, el("p", { class: "okc", text: "Published v" + v + ": " + (d.funcs || []).map(function (f) { return f.id || f.name; }).join(", ") }));
                }).catch(function (e) {
                  var line = e.detail && e.detail.line;
                  if (line) ed.markLine(line);
                  add(pubmsg, el("p", { class: "err", text: e.message }));
                });
            } }, "Publish"),
            el("button", { id: "show-diff", onclick: function () { diffBox.replaceChildren(diffView(s.code || "", ed.value)); } }, "Diff with published"))),
        el("div", { class: "panel" }, el("h2", { text: "Run a function of the draft" }),
          el("label", null, "Function", fsel), el("label", null, "kwargs (JSON)", kw),
          el("button", { id: "run", onclick: function () {
            var k;
            try { k = parseJSON(kw.value, "kwargs"); } catch (e) { return toast(e.message, true); }
            out.replaceChildren(el("p", { class: "muted", text: "running…" }));
            save().then(function () {
              return api("POST", "/api/v1/scripts/" + enc(id) + "/do/debug", { funcName: fsel.value, kwargs: k });
            }).then(function (r) { out.replaceChildren(runResult(r)); })
              .catch(function (e) { out.replaceChildren(el("p", { class: "err", text: e.message })); });
          } }, "Run draft"), out),
        pubmsg, diffBox]);
      ed.textarea.addEventListener("input", refreshFuncs);
      refreshFuncs();
      ready("scripts");
    }).catch(fail);
  }
  function runResult(r) {
    var ok = r.status === "success" || (!r.exception && r.status !== "failure");
    return el("div", { class: "run-result" },
      el("p", null, badge(ok ? "success" : "failure"), " ", el("span", { class: "muted", text: r.cost !== undefined ? "cost " + r.cost + " s" : "" })),
      el("div", { class: "muted", text: "result" }), el("pre", { class: "out", id: "run-value", text: pretty(r.returnValue !== undefined ? r.returnValue : r.result) }),
      r.printLogs && r.printLogs.length ? [el("div", { class: "muted", text: "output" }), el("pre", { class: "out", id: "run-logs", text: Array.isArray(r.printLogs) ? r.printLogs.join("\n") : r.printLogs })] : null,
      r.traceback ? [el("div", { class: "muted", text: "traceback" }), el("pre", { class: "out err", id: "run-traceback", text: r.traceback })] : null);
  }
  /* a line diff (LCS), enough for scripts of a few hundred lines */
  function diffView(a, b) {
    var x = a.split("\n"), y = b.split("\n");
    if (x.length * y.length > 4e6) return el("p", { class: "muted", text: "too long to diff here" });
    var n = x.length, m = y.length, L = [];
    for (var i = 0; i <= n; i++) L.push(new Int32Array(m + 1));
    for (i = n - 1; i >= 0; i--)
      for (var j = m - 1; j >= 0; j--)
        L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
    var lines = [];
    i = 0; j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && x[i] === y[j]) { lines.push(el("div", { text: "  " + x[i] })); i++; j++; }
      else if (j < m && (i >= n || L[i][j + 1] >= L[i + 1][j])) { lines.push(el("div", { class: "add", text: "+ " + y[j] })); j++; }
      else { lines.push(el("div", { class: "del", text: "- " + x[i] })); i++; }
    }
    return el("div", { class: "panel" }, el("h2", { text: "Published → draft" }), el("pre", { class: "out" }, lines));
  }

  /* ---- Sync and Async APIs (one page, two kinds) ----------------------- */
  var API_KINDS = {
    sync: { view: "sync-apis", wire: "sync-apis", label: "Sync API", path: "/api/v1/sync/" },
    async: { view: "async-apis", wire: "async-apis", label: "Async API", path: "/api/v1/async/" },
  };
  /* DFF's throttlingJSON windows (server_throttle.c has the same table) */
  var THROTTLE = [["bySecond", "per second"], ["byMinute", "per minute"], ["byHour", "per hour"], ["byDay", "per day"],
    ["byMonth", "per month"], ["byYear", "per year"]];
  function funcOptions(sel) {
    return res("funcs").list().then(function (d) {
      fill(sel, items(d).map(function (f) { return el("option", { value: f.id, text: f.id }); }));
    });
  }
  function throttleText(t) {
    if (!t || typeof t !== "object") return "none";
    var parts = THROTTLE.filter(function (w) { return t[w[0]]; }).map(function (w) { return t[w[0]] + " " + w[1]; });
    return parts.length ? parts.join(", ") : "none";
  }
  function viewApis(main, kind) {
    var R = res(kind.wire);
    var fsel = el("select", { id: "api-func" });
    var kw = el("textarea", { class: "json", id: "api-kwargs", text: "{}" });
    var title = el("input", { id: "api-title" });
    var needKey = el("input", { type: "checkbox", id: "api-need-key" });
    var expire = el("input", { type: "datetime-local", id: "api-expire" });
    var windows = THROTTLE.slice(0, 4); /* the form's; a list shows all six */
    var limits = windows.map(function (w) { return el("input", { type: "number", min: "1", class: "num", id: "api-" + w[0], placeholder: "—" }); });
    var list = el("div", { id: "apis" });
    add(main, [el("h1", { text: kind.label + "s" }),
      el("div", { class: "panel" }, el("form", { onsubmit: function (ev) {
        ev.preventDefault();
        var k, thr = {}, data;
        try { k = parseJSON(kw.value, "kwargs"); } catch (e) { return toast(e.message, true); }
        windows.forEach(function (w, i) { if (limits[i].value) thr[w[0]] = Number(limits[i].value); });
        data = { funcId: fsel.value, funcCallKwargsJSON: k, title: title.value, needKey: needKey.checked };
        if (Object.keys(thr).length) data.throttlingJSON = thr;
        if (expire.value) data.expireTime = new Date(expire.value).toISOString();
        R.add(data).then(function () { toast(kind.label + " created"); load(); }).catch(fail);
      } }, el("label", null, "Function", fsel),
        el("label", null, "Fixed kwargs (JSON; \"INPUT_BY_CALLER\" for a placeholder)", kw),
        el("label", null, "Title", title), el("label", null, "Needs an access key", needKey),
        el("label", null, "Expires (local time; empty: never)", expire),
        el("fieldset", { class: "throttle" }, el("legend", { text: "Throttling: at most N calls" }),
          windows.map(function (w, i) { return el("label", null, w[1], limits[i]); })),
        el("button", { class: "primary", type: "submit", id: "api-create" }, "Create " + kind.label))),
      list]);
    funcOptions(fsel).catch(fail);
    function load() {
      R.list().then(function (d) {
        var a = items(d);
        fill(list, a.length ? a.map(apiCard) : [el("p", { class: "muted", text: "No " + kind.label + "s yet." })]);
        ready(kind.view);
      }).catch(fail);
    }
    function apiCard(a) {
      var url = location.origin + kind.path + a.id;
      var curl = "curl -s '" + url + "?kwargs=" + enc(JSON.stringify({})) + "'" + (a.needKey ? " -H 'Authorization: Bearer $KEY'" : "");
      var out = el("pre", { class: "out api-out" });
      var expired = a.expireTime && new Date(a.expireTime) < new Date();
      return el("div", { class: "panel api", "data-id": a.id },
        el("h2", null, el("span", { class: "mono", text: a.id }), " ", el("span", { text: a.title || "" }), " ",
          badge(a.isDisabled ? "off" : "on"), expired ? [" ", badge("expired", "warn")] : null),
        el("div", { class: "kv" },
          el("span", { text: "function" }), el("span", { class: "mono", text: a.funcId }),
          el("span", { text: "fixed kwargs" }), el("span", { class: "mono", text: JSON.stringify(jsonText(a.funcCallKwargsJSON) || {}) }),
          el("span", { text: "throttling" }), el("span", { class: "api-throttle", text: throttleText(jsonText(a.throttlingJSON)) }),
          el("span", { text: "expires" }), el("span", { class: "api-expire", text: a.expireTime ? fmtTime(a.expireTime) : "never" }),
          el("span", { text: "URL" }), el("span", { class: "mono api-url", text: url }),
          el("span", { text: "curl" }), el("span", { class: "mono api-curl", text: curl })),
        el("div", { class: "row" },
          el("button", { class: "api-copy", onclick: function () {
            (navigator.clipboard ? navigator.clipboard.writeText(curl) : Promise.reject(new Error("no clipboard")))
              .then(function () { toast("curl copied"); }, function () { toast("select the curl line to copy it", true); });
          } }, "Copy curl"),
          el("button", { class: "api-call", onclick: function () {
            fetch(url, { credentials: "omit" }).then(function (r) { return r.text().then(function (t) { out.textContent = r.status + " " + t; }); })
              .catch(function (e) { out.textContent = e.message; });
          } }, "Call"),
          el("button", { class: "api-toggle", onclick: function () {
            R.modify(a.id, { isDisabled: !a.isDisabled }).then(load).catch(fail);
          } }, a.isDisabled ? "Enable" : "Disable"),
          el("button", { class: "danger", onclick: function () {
            if (confirm("Delete " + kind.label + " " + a.id + "?")) R.del(a.id).then(load).catch(fail);
          } }, "Delete")),
        out);
    }
    load();
  }

  /* ---- Task records --------------------------------------------------- */
  var STATUSES = ["", "success", "failure", "timeout", "skip"];
  var ORIGINS = ["", "direct", "syncAPI", "asyncAPI", "cronJob", "subTask"];
  function viewTasks(main, args) {
    var opt = function (s) { return el("option", { value: s, text: s || "any" }); };
    var func = el("input", { id: "tr-func", placeholder: "func id" });
    var status = el("select", { id: "tr-status" }, STATUSES.map(opt));
    var origin = el("select", { id: "tr-origin" }, ORIGINS.map(opt));
    var since = el("input", { id: "tr-since", placeholder: "ISO time or unix s" });
    var body = el("tbody");
    var detail = el("div", { id: "task-detail" });
    add(main, [el("h1", { text: "Task records" }),
      el("div", { class: "panel" }, el("form", { onsubmit: function (ev) { ev.preventDefault(); load(); } },
        el("label", null, "Function", func), el("label", null, "Status", status), el("label", null, "Origin", origin),
        el("label", null, "Ended since", since), el("button", { type: "submit", id: "tr-filter" }, "Filter"))),
      el("div", { class: "row" },
        el("div", { class: "panel grow" }, el("table", { id: "task-records" }, th(["ended", "function", "origin", "status", "cost"]), body)),
        el("div", { class: "grow" }, detail))]);
    var seq = 0;
    function load() {
      /* only the latest filter's answer may draw the list */
      var mine = ++seq;
      var q = [["funcId", func.value.trim()], ["status", status.value], ["origin", origin.value], ["since", since.value.trim()]]
        .filter(function (p) { return p[1]; }).map(function (p) { return p[0] + "=" + enc(p[1]); });
      api("GET", "/api/v1/task-records/do/list?pageSize=50" + (q.length ? "&" + q.join("&") : "")).then(function (d) {
        if (mine !== seq) return;
        fill(body, items(d).map(function (t) {
          return el("tr", { class: "click task", tabindex: 0, "data-id": t.id, onclick: function () { show(t.id); },
            onkeydown: function (ev) { if (ev.key === "Enter") show(t.id); } },
          el("td", { text: fmtTime(t.endTimeMs || t.triggerTimeMs) }), el("td", { class: "mono", text: t.funcId }),
          el("td", { text: t.origin }), el("td", null, badge(t.tandemStatus || t.status)),
          el("td", { text: t.costMs !== undefined && t.costMs !== null ? t.costMs + " ms" : "" }));
        }));
        if (!items(d).length) fill(body, [el("tr", null, el("td", { colspan: 5, class: "muted", text: "No task records match." }))]);
        ready("tasks");
      }).catch(fail);
    }
    /* One record, and its call chain: the root task and every task it led
     * to (DFF's ?rootTaskId= lists the root and its subtasks). */
    function show(id) {
      api("GET", "/api/v1/task-records/do/list?id=" + enc(id)).then(function (d) {
        var t = items(d)[0];
        if (!t) return toast("task record " + id + " not found", true);
        var root = t.rootTaskId && t.rootTaskId !== "ROOT" ? t.rootTaskId : t.id;
        var chain = jsonText(t.callChainJSON);
        var sec = function (label, v, cls, id) {
          return v === null || v === undefined || v === "" ? null : [el("div", { class: "muted", text: label }), el("pre", { class: "out" + (cls ? " " + cls : ""), id: id, text: pretty(v) })];
        };
        var tree = el("tbody");
        detail.replaceChildren(el("div", { class: "panel" },
          el("h2", null, el("span", { class: "mono", text: t.id }), " ", badge(t.tandemStatus || t.status)),
          el("div", { class: "kv", id: "task-fields" },
            ["funcId", "origin", "originId", "queue", "node", "status", "exceptionType", "costMs"].map(function (k) {
              return [el("span", { text: k }), el("span", { class: "mono", text: t[k] === null || t[k] === undefined ? "" : t[k] })];
            }),
            el("span", { text: "trigger" }), el("span", { text: fmtTime(t.triggerTimeMs) }),
            el("span", { text: "start / end" }), el("span", { text: fmtTime(t.startTimeMs) + " / " + fmtTime(t.endTimeMs) })),
          sec("kwargs", jsonText(t.funcCallKwargsJSON), "", "task-kwargs"),
          sec("result", jsonText(t.returnValueJSON), "", "task-result"),
          sec("print log", t.printLogsTEXT, "", "task-logs"),
          sec("exception", t.exceptionTEXT, "err"),
          sec("traceback", t.tracebackTEXT, "err", "task-traceback"),
          el("h2", { text: "Call chain" }),
          el("p", { class: "mono", id: "task-chain-funcs", text: (Array.isArray(chain) && chain.length ? chain.join(" → ") : t.funcId) }),
          el("p", { class: "muted", text: root === t.id ? "This task is the root of its chain." : "Root task: " + root }),
          el("table", { id: "task-chain" }, th(["task", "function", "origin", "status"]), tree)));
        api("GET", "/api/v1/task-records/do/list?pageSize=100&rootTaskId=" + enc(root)).then(function (c) {
          fill(tree, items(c).reverse().map(function (x) {
            return el("tr", { class: "click chain" + (x.id === t.id ? " sel" : ""), tabindex: 0, "data-id": x.id,
              onclick: function () { show(x.id); }, onkeydown: function (ev) { if (ev.key === "Enter") show(x.id); } },
              el("td", { class: "mono", text: (x.id === root ? "root " : "") + x.id }), el("td", { class: "mono", text: x.funcId }),
              el("td", { text: x.origin }), el("td", null, badge(x.tandemStatus || x.status)));
          }));
        }).catch(fail);
      }).catch(fail);
    }
    load();
    if (args[0]) show(decodeURIComponent(args[0]));
  }

  /* ---- Cron jobs ------------------------------------------------------ */
  function viewCron(main) {
    var R = res("cron-jobs");
    var fsel = el("select", { id: "cron-func" });
    var expr = el("input", { id: "cron-expr", value: "*/5 * * * *" });
    var tz = el("input", { id: "cron-tz", value: Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC" });
    var kw = el("textarea", { class: "json", id: "cron-kwargs", text: "{}" });
    var body = el("tbody");
    var global = el("span", { id: "cron-global" });
    var next = el("div", { id: "cron-next", class: "muted mono" });
    var pending = 0;
    function preview() {
      clearTimeout(pending);
      pending = setTimeout(function () {
        api("GET", "/api/v1/console/cron-next?count=5&expr=" + enc(expr.value) + "&timezone=" + enc(tz.value))
          .then(function (d) { next.replaceChildren("Next: ", d.join("  ·  ")); })
          .catch(function (e) { next.replaceChildren(el("span", { class: "err", text: e.message })); });
      }, 250);
    }
    expr.addEventListener("input", preview);
    tz.addEventListener("input", preview);
    preview();
    add(main, [el("h1", { text: "Cron jobs" }),
      el("div", { class: "panel" }, el("form", { onsubmit: function (ev) {
        ev.preventDefault();
        var k;
        try { k = parseJSON(kw.value, "kwargs"); } catch (e) { return toast(e.message, true); }
        R.add({ funcId: fsel.value, cronExpr: expr.value, timezone: tz.value, funcCallKwargsJSON: k })
          .then(function () { toast("Cron job created"); load(); }).catch(fail);
      } }, el("label", null, "Function", fsel), el("label", null, "Expression", expr), el("label", null, "Time zone", tz),
        el("label", null, "kwargs (JSON)", kw), el("button", { class: "primary", type: "submit", id: "cron-create" }, "Create cron job"), next)),
      el("div", { class: "panel" }, global),
      el("div", { class: "panel" }, el("table", { id: "cron-jobs" },
        th(["job", "function", "expression", "zone", "state", "last outcome", "next", "missed", ""]), body))]);
    funcOptions(fsel).catch(fail);
    function load() {
      api("GET", "/api/v1/cron-jobs/_settings").then(function (s) {
        var paused = !!(s && s.paused);
        global.replaceChildren("All cron jobs: ", badge(paused ? "paused" : "running", paused ? "warn" : "on"), " ",
          el("button", { id: "cron-global-toggle", onclick: function () {
            if (confirm(paused ? "Resume every cron job?" : "Pause every cron job?"))
              api("PATCH", "/api/v1/cron-jobs/_settings", { paused: !paused }).then(load).catch(fail);
          } }, paused ? "Resume all" : "Pause all"));
      }).catch(fail);
      /* the last outcome is the beat's (each job's `state`); missed slots
       * are task records (Tandem's status "missed"): one request */
      Promise.all([R.list(), api("GET", "/api/v1/task-records/do/list?origin=cronJob&tandemStatus=missed&pageSize=1000")
        .catch(function () { return []; })]).then(function (r) {
        var missed = {};
        items(r[1]).forEach(function (t) {
          if (t.tandemStatus === "missed") missed[t.originId] = (missed[t.originId] || 0) + 1;
        });
        fill(body, items(r[0]).map(function (j) {
          var st = j.state || {};
          return el("tr", { class: "cron", "data-id": j.id },
            el("td", { class: "mono", text: j.id }), el("td", { class: "mono", text: j.funcId }),
            el("td", { class: "mono", text: j.cronExpr }), el("td", { text: j.timezone }),
            el("td", null, badge(j.isDisabled ? "paused" : "on", j.isDisabled ? "warn" : "on")),
            el("td", { class: "cron-last", text: (st.last_outcome || "") + (st.last_fire ? " at " + fmtTime(st.last_fire) : "") }),
            el("td", { class: "cron-next", text: st.next_fire || "" }),
            el("td", { text: missed[j.id] || "" }),
            el("td", null,
              el("button", { class: "cron-toggle", onclick: function () {
                R.modify(j.id, { isDisabled: !j.isDisabled }).then(load).catch(fail);
              } }, j.isDisabled ? "Resume" : "Pause"), " ",
              el("button", { class: "cron-run", onclick: function () {
                api("POST", "/api/v1/cron/" + enc(j.id)).then(function (r) { toast("Started " + r.id); }).catch(fail);
              } }, "Run now"), " ",
              el("button", { class: "danger", onclick: function () {
                if (confirm("Delete cron job " + j.id + "?")) R.del(j.id).then(load).catch(fail);
              } }, "Delete")));
        }));
        ready("cron");
      }).catch(fail);
    }
    load();
  }

  /* ---- Connectors ----------------------------------------------------- */
  var CONNECTOR_TYPES = ["mysql", "mariadb", "postgresql", "redis", "memcached", "mqtt"];
  function viewConnectors(main) {
    var R = res("connectors");
    var id = el("input", { id: "conn-id", placeholder: "my_redis" });
    var title = el("input", { id: "conn-title" });
    var type = el("select", { id: "conn-type" }, CONNECTOR_TYPES.map(function (t) { return el("option", { value: t, text: t }); }));
    var cfg = el("textarea", { class: "json", id: "conn-config", text: '{"host": "127.0.0.1", "port": 6379}' });
    var pw = el("input", { id: "conn-password", type: "password", autocomplete: "new-password" });
    var skip = el("input", { type: "checkbox", id: "conn-skip-test" });
    var body = el("tbody");
    add(main, [el("h1", { text: "Connectors" }),
      el("div", { class: "panel" }, el("form", { onsubmit: function (ev) {
        ev.preventDefault();
        var c;
        try { c = parseJSON(cfg.value, "configJSON"); } catch (e) { return toast(e.message, true); }
        /* the password travels once, to be sealed; it is never answered */
        if (pw.value) c.password = pw.value;
        R.add({ id: id.value.trim(), title: title.value, type: type.value, configJSON: c }, { skipTest: skip.checked })
          .then(function () { pw.value = ""; toast("Connector saved"); load(); }).catch(fail);
      } }, el("label", null, "Id", id), el("label", null, "Title", title), el("label", null, "Type", type),
        el("label", null, "configJSON (no secrets)", cfg), el("label", null, "Password (kept sealed)", pw),
        el("label", null, "Save without testing", skip),
        el("button", { class: "primary", type: "submit", id: "conn-add" }, "Test and add"))),
      el("div", { class: "panel" }, el("table", { id: "connectors" }, th(["id", "title", "type", "config", "test", ""]), body))]);
    function load() {
      R.list().then(function (d) {
        fill(body, items(d).map(function (c) {
          var outc = el("span", { class: "conn-test-result" });
          return el("tr", { class: "connector", "data-id": c.id },
            el("td", { class: "mono", text: c.id }), el("td", { text: c.title || "" }), el("td", { text: c.type }),
            el("td", { class: "mono conn-config", text: JSON.stringify(c.configJSON || {}) }),
            el("td", null, el("button", { class: "conn-test", onclick: function () {
              outc.textContent = "testing…";
              outc.className = "conn-test-result muted";
              api("GET", "/api/v1/connectors/" + enc(c.id) + "/do/test").then(function (t) {
                outc.textContent = t.ok ? "connected" : "failed: " + t.message;
                outc.className = "conn-test-result " + (t.ok ? "okc" : "err");
              }).catch(function (e) { outc.textContent = "failed: " + e.message; outc.className = "conn-test-result err"; });
            } }, "Test"), " ", outc),
            el("td", null, el("button", { class: "danger", onclick: function () {
              if (confirm("Delete connector " + c.id + "? Scripts using DFF.CONN('" + c.id + "') stop working.")) R.del(c.id).then(load).catch(fail);
            } }, "Delete")));
        }));
        if (!items(d).length) fill(body, [el("tr", null, el("td", { colspan: 6, class: "muted", text: "No connectors yet." }))]);
        ready("connectors");
      }).catch(fail);
    }
    load();
  }

  /* ---- Env variables (typed, as DFF's autoTypeCasting) ----------------- */
  var ENV_TYPES = ["string", "password", "integer", "float", "boolean", "json", "commaArray"];
  function viewEnv(main) {
    var R = res("env-variables");
    var id = el("input", { id: "env-id" }), value = el("input", { id: "env-value", autocomplete: "off" });
    var type = el("select", { id: "env-type", onchange: function () {
      /* a password is typed blind and never comes back from the server */
      value.type = type.value === "password" ? "password" : "text";
    } }, ENV_TYPES.map(function (t) { return el("option", { value: t, text: t }); }));
    var body = el("tbody");
    add(main, [el("h1", { text: "Env variables" }),
      el("div", { class: "panel" }, el("form", { onsubmit: function (ev) {
        ev.preventDefault();
        var data = { valueTEXT: value.value, autoTypeCasting: type.value };
        R.add(Object.assign({ id: id.value }, data))
          .catch(function (e) { if (!duplicate(e)) throw e; return R.modify(id.value, data); })
          .then(function () { value.value = ""; load(); }).catch(fail);
      } }, el("label", null, "Name", id), el("label", null, "Type", type), el("label", null, "Value", value),
        el("button", { class: "primary", type: "submit", id: "env-set" }, "Set"))),
      el("div", { class: "panel" }, el("table", { id: "env" }, th(["name", "type", "value", "updated", ""]), body))]);
    function load() {
      R.list().then(function (d) {
        fill(body, items(d).map(function (v) {
          var hidden = v.autoTypeCasting === "password" || v.valueTEXT === null;
          return el("tr", { class: "env", "data-id": v.id }, el("td", { class: "mono", text: v.id }),
            el("td", null, badge(v.autoTypeCasting || "string", v.autoTypeCasting === "password" ? "warn" : "type")),
            el("td", { class: "mono env-value" + (hidden ? " muted" : ""), text: hidden ? "(hidden: password)" : v.valueTEXT }),
            el("td", { text: fmtTime(v.updateTime || v.createTime) }),
            el("td", null, el("button", { class: "danger", onclick: function () {
              if (confirm("Delete " + v.id + "?")) R.del(v.id).then(load).catch(fail);
            } }, "Delete")));
        }));
        ready("env");
      }).catch(fail);
    }
    load();
  }

  /* ---- Access keys ---------------------------------------------------- */
  function viewKeys(main) {
    var R = res("access-keys");
    var name = el("input", { id: "key-name" });
    var scope = el("select", { id: "key-scope" }, el("option", { value: "admin", text: "admin" }), el("option", { value: "call", text: "call only" }));
    var shown = el("div", { id: "key-secret-box" });
    var body = el("tbody");
    add(main, [el("h1", { text: "Access keys" }),
      el("div", { class: "panel" }, el("form", { onsubmit: function (ev) {
        ev.preventDefault();
        var kname = name.value;
        R.add({ name: kname, scope: scope.value }).then(function (k) {
          shown.replaceChildren(el("p", null, "Secret of ", el("b", { text: k.name || kname }), " — shown once, copy it now:"),
            el("div", { class: "secret", id: "key-secret", text: k.secret }));
          load();
        }).catch(fail);
      } }, el("label", null, "Name", name), el("label", null, "Scope", scope),
        el("button", { class: "primary", type: "submit", id: "key-create" }, "Create key")), shown),
      el("div", { class: "panel" }, el("table", { id: "keys" }, th(["id", "name", "scope", "created", ""]), body))]);
    function load() {
      // live keys only: a revoked key leaves the list (DFF's delete)
      R.list().then(function (d) {
        fill(body, items(d).map(function (k) {
          return el("tr", { class: "key", "data-id": k.id }, el("td", { class: "mono", text: k.id }), el("td", { class: "key-name", text: k.name }),
            el("td", null, badge(k.scope || "admin", k.scope === "call" ? "type" : "on")),
            el("td", { text: fmtTime(k.createTime) }),
            el("td", null, el("button", { class: "danger key-revoke", onclick: function () {
              if (confirm("Revoke access key " + k.name + "? Clients using it stop working."))
                /* a secret left on screen after a revoke reads as a live one */
                R.del(k.id).then(function () { shown.replaceChildren(); load(); }).catch(fail);
            } }, "Revoke")));
        }));
        ready("keys");
      }).catch(fail);
    }
    load();
  }

  /* ---- Users ---------------------------------------------------------- */
  function viewUsers(main) {
    var R = res("users");
    var uname = el("input", { id: "user-name" }), pw = el("input", { id: "user-password", type: "password", autocomplete: "new-password" });
    var role = el("select", { id: "user-role" }, [["sa", "sa (administers)"], ["user", "user (calls only)"]].map(function (r) { return el("option", { value: r[0], text: r[1] }); }));
    var body = el("tbody");
    add(main, [el("h1", { text: "Users" }),
      el("div", { class: "panel" }, el("form", { onsubmit: function (ev) {
        ev.preventDefault();
        R.add({ username: uname.value, password: pw.value, roles: [role.value] })
          .then(function () { uname.value = ""; pw.value = ""; load(); }).catch(fail);
      } }, el("label", null, "User name", uname), el("label", null, "Password", pw), el("label", null, "Role", role),
        el("button", { class: "primary", type: "submit", id: "user-add" }, "Add user"))),
      el("div", { class: "panel" }, el("table", { id: "users" }, th(["user", "name", "roles", "state", ""]), body))]);
    function load() {
      R.list().then(function (d) {
        fill(body, items(d).map(function (u) {
          var roles = jsonText(u.roles);
          return el("tr", null, el("td", { class: "mono", text: u.username }), el("td", { text: u.name || "" }),
            el("td", { text: Array.isArray(roles) ? roles.join(", ") : roles || "" }),
            el("td", null, u.isDisabled ? badge("disabled", "off") : badge("active", "on")),
            el("td", null, el("button", { onclick: function () {
              R.modify(u.id, { isDisabled: !u.isDisabled }).then(load).catch(fail);
            } }, u.isDisabled ? "Enable" : "Disable")));
        }));
        ready("users");
      }).catch(fail);
    }
    load();
  }

  /* ---- Call (every signed-in user; all a call-only user sees) ---------- */
  function viewCall(main) {
    var fsel = el("select", { id: "call-func" });
    var kw = el("textarea", { class: "json", id: "call-kwargs", text: "{}" });
    var out = el("pre", { class: "out", id: "call-out" });
    var tid = el("input", { id: "call-task-id", placeholder: "task id" });
    var tout = el("pre", { class: "out", id: "call-task-out" });
    var apis = el("tbody");
    add(main, [el("h1", { text: "Call" }),
      el("div", { class: "panel" }, el("h2", { text: "Call a function" }), el("form", { onsubmit: function (ev) {
        ev.preventDefault();
        var k;
        try { k = parseJSON(kw.value, "kwargs"); } catch (e) { return toast(e.message, true); }
        out.textContent = "calling…";
        api("POST", "/api/v1/func/" + enc(fsel.value), { kwargs: k })
          .then(function (r) { out.textContent = pretty(r); })
          .catch(function (e) { out.textContent = e.message; });
      } }, el("label", null, "Function", fsel), el("label", null, "kwargs (JSON)", kw),
        el("button", { class: "primary", type: "submit", id: "call-run" }, "Call"), out)),
      el("div", { class: "panel" }, el("h2", { text: "Sync and Async APIs" }),
        el("table", { id: "call-apis" }, th(["kind", "API", "title", "function", "URL"]), apis)),
      el("div", { class: "panel" }, el("h2", { text: "A task's result (async calls)" }), el("form", { onsubmit: function (ev) {
        ev.preventDefault();
        api("GET", "/api/v1/tasks/" + enc(tid.value.trim())).then(function (t) { tout.textContent = pretty(t); })
          .catch(function (e) { tout.textContent = e.message; });
      } }, el("label", null, "Task id", tid), el("button", { type: "submit", id: "call-task" }, "Look up"), tout))]);
    api("GET", "/api/v1/console/callables").then(function (c) {
      fill(fsel, (c.funcs || []).map(function (f) { return el("option", { value: f.id, text: f.id + (f.title ? " — " + f.title : "") }); }));
      var rows = [];
      [["sync", c.syncAPIs, API_KINDS.sync], ["async", c.asyncAPIs, API_KINDS.async]].forEach(function (k) {
        (k[1] || []).forEach(function (a) {
          rows.push(el("tr", { class: "call-api" }, el("td", { text: k[0] }), el("td", { class: "mono", text: a.id }),
            el("td", { text: a.title || "" }), el("td", { class: "mono", text: a.funcId }),
            el("td", { class: "mono", text: location.origin + k[2].path + a.id })));
        });
      });
      fill(apis, rows.length ? rows : [el("tr", null, el("td", { colspan: 5, class: "muted", text: "No enabled APIs." }))]);
      ready("call");
    }).catch(fail);
  }

  route();
})();
