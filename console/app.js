/* Tandem console. Plain JavaScript talking to the same DFF-shaped API as
 * every client; the session is an HttpOnly cookie, every request carries the
 * CSRF value the sign-in answered. Every piece of data reaches the page as
 * a text node (el() below): nothing user-supplied is ever parsed as HTML. */
"use strict";

(function () {
  var state = { csrf: "", user: "", timer: 0, view: "" };
  var app = document.getElementById("app");

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
  function badge(text, cls) { return el("span", { class: "badge " + (cls || text), text: text }); }
  function fmtTime(v) {
    if (v === null || v === undefined || v === "") return "";
    var d = typeof v === "number" ? new Date(v) : new Date(v);
    if (isNaN(d)) return String(v);
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
  }
  function ago(ms) {
    if (ms === null || ms === undefined) return "";
    var s = Math.max(0, Math.round((Date.now() - ms) / 1000));
    return s < 60 ? s + " s ago" : s < 3600 ? Math.round(s / 60) + " min ago" : Math.round(s / 3600) + " h ago";
  }
  function pretty(v) { return typeof v === "string" ? v : JSON.stringify(v, null, 2); }
  function toast(msg, bad) {
    var t = el("div", { class: "toast" + (bad ? " bad" : ""), role: "status", text: msg });
    document.body.appendChild(t);
    setTimeout(function () { t.remove(); }, bad ? 6000 : 2500);
  }
  function parseJSON(text, what) {
    if (!text.trim()) return {};
    try { return JSON.parse(text); } catch (e) { throw new Error(what + " is not JSON: " + e.message); }
  }

  /* ---- the API -------------------------------------------------------- */
  function api(method, path, body) {
    var opts = { method: method, credentials: "same-origin", headers: { "X-Tandem-Csrf": state.csrf } };
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
        return j && "data" in j ? j.data : j;
      });
    });
  }
  function fail(e) { if (e.message !== "signed out") toast(e.message, true); }
  function items(d) { return Array.isArray(d) ? d : d && Array.isArray(d.items) ? d.items : []; }

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
          .then(function (d) {
            state.csrf = d.csrf;
            state.user = d.username;
            state.view = "";
            route();
          })
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

  /* ---- the shell and routing ------------------------------------------ */
  var VIEWS = [
    ["overview", "Overview", viewOverview],
    ["scripts", "Scripts", viewScripts],
    ["apis", "Sync APIs", viewApis],
    ["tasks", "Task records", viewTasks],
    ["cron", "Cron jobs", viewCron],
    ["env", "Env variables", viewEnv],
    ["keys", "Access keys", viewKeys],
    ["users", "Users", viewUsers],
  ];
  function route() {
    if (!state.csrf) {
      api("GET", "/api/v1/console/do/session")
        .then(function (d) { state.csrf = d.csrf; state.user = d.username; state.view = ""; route(); })
        .catch(function () { /* signIn() already shown */ });
      return;
    }
    var hash = location.hash.replace(/^#\/?/, "").split("/");
    var name = hash[0] || "overview";
    var v = VIEWS.filter(function (x) { return x[0] === name; })[0] || VIEWS[0];
    clearInterval(state.timer);
    state.view = v[0];
    var main = el("main", { id: "main" });
    var nav = el("nav", { "aria-label": "sections" },
      el("div", { class: "brand", text: "Tandem" }),
      VIEWS.map(function (x) {
        return el("a", { href: "#/" + x[0], id: "nav-" + x[0], class: x[0] === v[0] ? "on" : "", text: x[1] });
      }),
      el("div", { class: "who" }, el("div", { id: "who", text: "Signed in as " + state.user }),
        el("button", { id: "signout", onclick: signOut }, "Sign out")));
    app.replaceChildren(el("div", { class: "shell" }, nav, main));
    v[2](main, hash.slice(1));
  }
  function signOut() {
    clearInterval(state.timer);
    state.view = "";
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
    var prev = null;
    function load() {
      Promise.all([
        api("GET", "/api/v1/console/cluster"),
        fetch("/metrics", { credentials: "same-origin" }).then(function (r) { return r.ok ? r.text() : ""; }).catch(function () { return ""; }),
      ]).then(function (res) {
        if (state.view !== "overview") return;
        var c = res[0], m = metricsOf(res[1]);
        var now = Date.now(), rate = null, errs = null;
        var calls = sum(m, "tandem_calls_total"), bad = sum(m, 'tandem_calls_total{outcome="failure"}') + sum(m, 'tandem_calls_total{outcome="timeout"}') + sum(m, 'tandem_calls_total{outcome="crashed"}');
        if (prev && now > prev.t) {
          rate = Math.max(0, (calls - prev.calls) / ((now - prev.t) / 1000));
          errs = Math.max(0, (bad - prev.bad) / ((now - prev.t) / 1000));
        }
        prev = { t: now, calls: calls, bad: bad };
        renderOverview(body, c, rate, errs);
        document.getElementById("ov-updated").textContent = "updated " + new Date().toLocaleTimeString();
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
  function renderOverview(body, c, rate, errs) {
    var names = Object.keys(c.nodes || {}).sort();
    var cards = names.map(function (n) {
      var s = c.nodes[n] || {};
      var primary = s.role === "master";
      var role = ROLE_NAMES[s.role] || s.role || "?";
      return el("div", { class: "panel node", id: "node-" + n, "data-role": role },
        el("h3", null, n + " ", badge(role, role), s.maint ? badge("maintenance", "warn") : null,
          primary ? el("span", { class: "muted", text: " holds the VIP" }) : null),
        el("div", { class: "kv" },
          el("span", { text: "epoch" }), el("span", { class: "epoch", text: s.epoch }),
          el("span", { text: "heartbeat" }), el("span", { text: s.ts ? ago(s.ts) : "" }),
          el("span", { text: "supervisor pid" }), el("span", { text: s.pid }),
          el("span", { text: "warm standby" }), el("span", { text: s.warm ? "yes" : "no" })));
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
    var ev = el("table", { id: "failover-events" },
      el("thead", null, el("tr", null, ["at", "node", "from", "to", "epoch", "cause"].map(function (h) { return el("th", { text: h }); }))),
      el("tbody", null, (c.failoverEvents || []).map(function (e) {
        return el("tr", null, el("td", { text: fmtTime(e.at) }), el("td", { text: e.node }),
          el("td", { text: e.from_state }), el("td", { text: e.to_state }), el("td", { text: e.epoch }),
          el("td", { text: e.cause }));
      })));
    var primaryNode = names.filter(function (n) { return (c.nodes[n] || {}).role === "master"; })[0];
    var res = c.switchoverResult;
    var actions = el("div", { class: "panel" },
      el("h2", { text: "Failover" }),
      primaryNode ? el("p", null,
        el("button", { class: "danger", id: "switchover", disabled: !!c.switchoverPending, onclick: function () {
          if (!confirm("Switch over: " + primaryNode + " hands the VIP and the stack to its peer. Calls in flight on " + primaryNode + " finish or are retried; a sub-second gap is expected. Go on?")) return;
          api("POST", "/api/v1/console/do/switchover", { primary: primaryNode })
            .then(function () { toast("Switchover requested: " + primaryNode + "'s supervisor hands over within a second"); })
            .catch(fail);
        } }, "Switch over from " + primaryNode), " ",
        el("span", { class: "muted", text: c.switchoverPending ? "request waiting for the primary's supervisor…" : "Refused unless the peer is ready (as `tandemctl switchover` without --force). Maintenance: `tandemctl maintenance on` on the node." }))
        : el("p", { class: "muted", text: "No primary reports to Redis: switchover needs the two-node appliance." }),
      res ? el("p", { id: "switchover-result", class: res.ok ? "okc" : "err",
        text: "Last switchover request (" + res.node + ", " + ago(res.at) + "): " + (res.ok ? "handing over at epoch " + res.epoch : res.error) }) : null);
    body.replaceChildren(stats, el("div", { class: "nodes" }, cards), queues, actions,
      el("div", { class: "panel" }, el("h2", { text: "Failover timeline" }),
        (c.failoverEvents || []).length ? ev : el("p", { class: "muted", text: "No failover events recorded." })));
  }
  function stat(label, value, id) {
    return el("div", { class: "stat" }, el("b", { id: id, text: value === undefined ? "" : value }), el("span", { class: "muted", text: label }));
  }

  /* ---- Scripts -------------------------------------------------------- */
  function viewScripts(main, args) {
    var list = el("tbody");
    var sid = el("input", { id: "new-script-id", placeholder: "demo__hello" });
    var stitle = el("input", { id: "new-script-title", placeholder: "title" });
    var detail = el("div", { id: "script-detail" });
    add(main, [el("h1", { text: "Scripts" }),
      el("div", { class: "panel" },
        el("form", { onsubmit: function (ev) {
          ev.preventDefault();
          var id = sid.value.trim();
          api("PUT", "/api/v1/scripts/" + encodeURIComponent(id), {
            title: stitle.value, code_draft: "import DFF\n\n@DFF.API('Hello')\ndef hello(name='world'):\n    return 'hello ' + name\n",
          }).then(function () { location.hash = "#/scripts/" + encodeURIComponent(id); }).catch(fail);
        } }, el("label", null, "Script id (<set>__<name>)", sid), el("label", null, "Title", stitle),
          el("button", { class: "primary", type: "submit", id: "new-script" }, "New script"))),
      el("div", { class: "row" },
        el("div", { class: "panel" }, el("table", { id: "scripts" }, el("thead", null, el("tr", null,
          el("th", { text: "script" }), el("th", { text: "title" }), el("th", { text: "published" }))), list)),
        el("div", { class: "grow" }, detail))]);
    api("GET", "/api/v1/scripts").then(function (d) {
      list.replaceChildren.apply(list, items(d).map(function (s) {
        return el("tr", { class: "click" + (args[0] === s.id ? " sel" : ""), tabindex: 0,
          onclick: function () { location.hash = "#/scripts/" + encodeURIComponent(s.id); },
          onkeydown: function (ev) { if (ev.key === "Enter") location.hash = "#/scripts/" + encodeURIComponent(s.id); } },
        el("td", { class: "mono", text: s.id }), el("td", { class: "script-title", text: s.title }),
        el("td", { text: s.publish_version ? "v" + s.publish_version : "draft only" }));
      }));
    }).catch(fail);
    if (args[0]) scriptDetail(detail, decodeURIComponent(args[0]));
  }
  function funcNames(code) {
    var out = [], re = /^def\s+([A-Za-z_]\w*)\s*\(/gm, m;
    while ((m = re.exec(code)) !== null) if (m[1][0] !== "_") out.push(m[1]);
    return out;
  }
  function scriptDetail(box, id) {
    api("GET", "/api/v1/scripts/" + encodeURIComponent(id)).then(function (s) {
      var ed;
      var fsel = el("select", { id: "run-func" });
      var kw = el("textarea", { class: "json", id: "run-kwargs", text: "{}" });
      var out = el("div", { id: "run-output" });
      var pubmsg = el("div", { id: "publish-result" });
      function refreshFuncs() {
        var cur = fsel.value;
        fsel.replaceChildren.apply(fsel, funcNames(ed.value).map(function (f) { return el("option", { value: f, text: f }); }));
        if (cur) fsel.value = cur;
      }
      function save() {
        return api("PUT", "/api/v1/scripts/" + encodeURIComponent(id), { code_draft: ed.value });
      }
      var diffBox = el("div", { class: "diff", id: "diff" });
      add(box.replaceChildren() || box, [
        el("div", { class: "panel" },
          el("h2", null, el("span", { class: "mono", text: s.id }), " ", el("span", { id: "script-heading", text: s.title || "" }),
            " ", badge(s.publish_version ? "published v" + s.publish_version : "draft only", s.publish_version ? "on" : "warn")),
          (ed = TandemEditor.create(el("div"), s.code_draft || "")).el,
          el("div", { class: "row" },
            el("button", { id: "save", onclick: function () { save().then(function () { toast("Draft saved"); }).catch(fail); } }, "Save draft"),
            el("button", { class: "primary", id: "publish", onclick: function () {
              pubmsg.replaceChildren();
              save().then(function () { return api("POST", "/api/v1/scripts/" + encodeURIComponent(id) + "/publish"); })
                .then(function (d) {
                  add(pubmsg, el("p", { class: "okc", text: "Published v" + d.publish_version + ": " + (d.funcs || []).map(function (f) { return f.id || f.name; }).join(", ") }));
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
              return api("POST", "/api/v1/scripts/" + encodeURIComponent(id) + "/do/debug", { funcName: fsel.value, kwargs: k });
            }).then(function (r) { out.replaceChildren(runResult(r)); })
              .catch(function (e) { out.replaceChildren(el("p", { class: "err", text: e.message })); });
          } }, "Run draft"), out),
        pubmsg, diffBox]);
      ed.textarea.addEventListener("input", refreshFuncs);
      refreshFuncs();
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

  /* ---- Sync APIs ------------------------------------------------------ */
  function funcOptions(sel) {
    return api("GET", "/api/v1/funcs/do/list?pageSize=1000").then(function (d) {
      sel.replaceChildren.apply(sel, items(d).map(function (f) { return el("option", { value: f.id, text: f.id }); }));
    });
  }
  function viewApis(main) {
    var fsel = el("select", { id: "api-func" });
    var kw = el("textarea", { class: "json", id: "api-kwargs", text: "{}" });
    var title = el("input", { id: "api-title" });
    var needKey = el("input", { type: "checkbox", id: "api-need-key" });
    var list = el("div", { id: "apis" });
    add(main, [el("h1", { text: "Sync APIs" }),
      el("div", { class: "panel" }, el("form", { onsubmit: function (ev) {
        ev.preventDefault();
        var k;
        try { k = parseJSON(kw.value, "kwargs"); } catch (e) { return toast(e.message, true); }
        api("POST", "/api/v1/sync-apis", { func_id: fsel.value, kwargs: k, title: title.value, need_key: needKey.checked })
          .then(function () { toast("Sync API created"); load(); }).catch(fail);
      } }, el("label", null, "Function", fsel),
        el("label", null, "Fixed kwargs (JSON; \"INPUT_BY_CALLER\" for a placeholder)", kw),
        el("label", null, "Title", title), el("label", null, "Needs an access key", needKey),
        el("button", { class: "primary", type: "submit", id: "api-create" }, "Create Sync API"))),
      list]);
    funcOptions(fsel).catch(fail);
    function load() {
      api("GET", "/api/v1/sync-apis").then(function (d) {
        list.replaceChildren.apply(list, items(d).map(apiCard));
      }).catch(fail);
    }
    function apiCard(a) {
      var url = location.origin + "/api/v1/sync/" + a.id;
      var curl = "curl -s '" + url + "?kwargs=" + encodeURIComponent(JSON.stringify({})) + "'" + (a.need_key ? " -H 'Authorization: Bearer $KEY'" : "");
      var out = el("pre", { class: "out api-out" });
      return el("div", { class: "panel api", "data-id": a.id },
        el("h2", null, el("span", { class: "mono", text: a.id }), " ", el("span", { text: a.title || "" }), " ",
          badge(a.enabled ? "on" : "off")),
        el("div", { class: "kv" },
          el("span", { text: "function" }), el("span", { class: "mono", text: a.func_id }),
          el("span", { text: "fixed kwargs" }), el("span", { class: "mono", text: JSON.stringify(a.kwargs || {}) }),
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
            api("PATCH", "/api/v1/sync-apis/" + encodeURIComponent(a.id), { enabled: !a.enabled }).then(load).catch(fail);
          } }, a.enabled ? "Disable" : "Enable"),
          el("button", { class: "danger", onclick: function () {
            if (confirm("Delete Sync API " + a.id + "?"))
              api("DELETE", "/api/v1/sync-apis/" + encodeURIComponent(a.id)).then(load).catch(fail);
          } }, "Delete")),
        out);
    }
    load();
  }

  /* ---- Task records --------------------------------------------------- */
  function viewTasks(main) {
    var func = el("input", { id: "tr-func", placeholder: "func id" });
    var status = el("select", { id: "tr-status" }, ["", "success", "failure", "timeout", "crashed", "skipped", "missed"].map(function (s) { return el("option", { value: s, text: s || "any" }); }));
    var origin = el("select", { id: "tr-origin" }, ["", "direct", "sync-api", "async-api", "cron", "subtask"].map(function (s) { return el("option", { value: s, text: s || "any" }); }));
    var since = el("input", { id: "tr-since", placeholder: "since (ISO or unix s)" });
    var body = el("tbody");
    var detail = el("div", { id: "task-detail" });
    add(main, [el("h1", { text: "Task records" }),
      el("div", { class: "panel" }, el("form", { onsubmit: function (ev) { ev.preventDefault(); load(); } },
        el("label", null, "Function", func), el("label", null, "Status", status), el("label", null, "Origin", origin),
        el("label", null, "Since", since), el("button", { type: "submit", id: "tr-filter" }, "Filter"))),
      el("div", { class: "row" },
        el("div", { class: "panel grow" }, el("table", { id: "task-records" }, el("thead", null, el("tr", null,
          ["ended", "function", "origin", "status", "cost"].map(function (h) { return el("th", { text: h }); }))), body)),
        el("div", { class: "grow" }, detail))]);
    function load() {
      var q = [["func", func.value], ["status", status.value], ["origin", origin.value], ["since", since.value]]
        .filter(function (p) { return p[1]; }).map(function (p) { return p[0] + "=" + encodeURIComponent(p[1]); });
      api("GET", "/api/v1/task-records?pageSize=50" + (q.length ? "&" + q.join("&") : "")).then(function (d) {
        body.replaceChildren.apply(body, items(d).map(function (t) {
          return el("tr", { class: "click task", tabindex: 0, onclick: function () { show(t); },
            onkeydown: function (ev) { if (ev.key === "Enter") show(t); } },
          el("td", { text: fmtTime(t.ended_at || t.end_at || t.created_at) }), el("td", { class: "mono", text: t.func_id }),
          el("td", { text: t.origin }), el("td", null, badge(t.status)), el("td", { text: t.cost_ms !== undefined ? t.cost_ms + " ms" : "" }));
        }));
        if (!items(d).length) body.replaceChildren(el("tr", null, el("td", { colspan: 5, class: "muted", text: "No task records match." })));
      }).catch(fail);
    }
    function show(t) {
      var rows = Object.keys(t).sort().map(function (k) {
        return [el("span", { text: k }), el("pre", { class: "out", text: pretty(t[k]) })];
      });
      detail.replaceChildren(el("div", { class: "panel" }, el("h2", { class: "mono", text: t.id }), el("div", { class: "kv", id: "task-fields" }, rows)));
    }
    load();
  }

  /* ---- Cron jobs ------------------------------------------------------ */
  function viewCron(main) {
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
        api("GET", "/api/v1/console/cron-next?count=5&expr=" + encodeURIComponent(expr.value) + "&timezone=" + encodeURIComponent(tz.value))
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
        api("POST", "/api/v1/cron-jobs", { func_id: fsel.value, expr: expr.value, timezone: tz.value, kwargs: k })
          .then(function () { toast("Cron job created"); load(); }).catch(fail);
      } }, el("label", null, "Function", fsel), el("label", null, "Expression", expr), el("label", null, "Time zone", tz),
        el("label", null, "kwargs (JSON)", kw), el("button", { class: "primary", type: "submit", id: "cron-create" }, "Create cron job"), next)),
      el("div", { class: "panel" }, global),
      el("div", { class: "panel" }, el("table", { id: "cron-jobs" }, el("thead", null, el("tr", null,
        ["job", "function", "expression", "zone", "state", "last outcome", ""].map(function (h) { return el("th", { text: h }); }))), body))]);
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
      api("GET", "/api/v1/cron-jobs").then(function (d) {
        body.replaceChildren.apply(body, items(d).map(function (j) {
          var st = j.state || {};
          return el("tr", { class: "cron", "data-id": j.id },
            el("td", { class: "mono", text: j.id }), el("td", { class: "mono", text: j.func_id }),
            el("td", { class: "mono", text: j.expr }), el("td", { text: j.timezone }),
            el("td", null, badge(j.enabled ? "on" : "paused", j.enabled ? "on" : "warn")),
            el("td", { text: (st.last_outcome || "") + (st.last_fire ? " at " + fmtTime(st.last_fire) : "") }),
            el("td", null,
              el("button", { class: "cron-toggle", onclick: function () {
                api("PATCH", "/api/v1/cron-jobs/" + encodeURIComponent(j.id), { enabled: !j.enabled }).then(load).catch(fail);
              } }, j.enabled ? "Pause" : "Resume"), " ",
              el("button", { class: "cron-run", onclick: function () {
                api("POST", "/api/v1/cron/" + encodeURIComponent(j.id)).then(function (r) { toast("Started " + r.id); }).catch(fail);
              } }, "Run now"), " ",
              el("button", { class: "danger", onclick: function () {
                if (confirm("Delete cron job " + j.id + "?"))
                  api("DELETE", "/api/v1/cron-jobs/" + encodeURIComponent(j.id)).then(load).catch(fail);
              } }, "Delete")));
        }));
      }).catch(fail);
    }
    load();
  }

  /* ---- Env variables -------------------------------------------------- */
  function viewEnv(main) {
    var id = el("input", { id: "env-id" }), value = el("input", { id: "env-value" });
    var body = el("tbody");
    add(main, [el("h1", { text: "Env variables" }),
      el("div", { class: "panel" }, el("form", { onsubmit: function (ev) {
        ev.preventDefault();
        // DFF's paths: add, or modify the one that exists
        var eid = encodeURIComponent(id.value);
        api("POST", "/api/v1/env-variables/do/add", { data: { id: id.value, valueTEXT: value.value, autoTypeCasting: "string" } })
          .catch(function (e) {
            if (e.status !== 409 && e.reason !== "EClientDuplicated") throw e;
            return api("POST", "/api/v1/env-variables/" + eid + "/do/modify", { data: { valueTEXT: value.value } });
          })
          .then(function () { value.value = ""; load(); }).catch(fail);
      } }, el("label", null, "Name", id), el("label", null, "Value", value), el("button", { class: "primary", type: "submit", id: "env-set" }, "Set"))),
      el("div", { class: "panel" }, el("table", { id: "env" }, el("thead", null, el("tr", null,
        ["name", "value", "updated", ""].map(function (h) { return el("th", { text: h }); }))), body))]);
    function load() {
      api("GET", "/api/v1/env-variables/do/list?pageSize=1000").then(function (d) {
        body.replaceChildren.apply(body, items(d).map(function (v) {
          return el("tr", null, el("td", { class: "mono", text: v.id }),
            el("td", { class: "mono", text: v.valueTEXT == null ? "(sealed)" : v.valueTEXT }), el("td", { text: fmtTime(v.updateTime || v.createTime) }),
            el("td", null, el("button", { class: "danger", onclick: function () {
              if (confirm("Delete " + v.id + "?")) api("GET", "/api/v1/env-variables/" + encodeURIComponent(v.id) + "/do/delete").then(load).catch(fail);
            } }, "Delete")));
        }));
      }).catch(fail);
    }
    load();
  }

  /* ---- Access keys ---------------------------------------------------- */
  function viewKeys(main) {
    var name = el("input", { id: "key-name" });
    var shown = el("div", { id: "key-secret-box" });
    var body = el("tbody");
    add(main, [el("h1", { text: "Access keys" }),
      el("div", { class: "panel" }, el("form", { onsubmit: function (ev) {
        ev.preventDefault();
        var kname = name.value;
        api("POST", "/api/v1/access-keys/do/add", { data: { name: kname } }).then(function (k) {
          shown.replaceChildren(el("p", null, "Secret of ", el("b", { text: k.name || kname }), " — shown once, copy it now:"),
            el("div", { class: "secret", id: "key-secret", text: k.secret }));
          load();
        }).catch(fail);
      } }, el("label", null, "Name", name), el("button", { class: "primary", type: "submit", id: "key-create" }, "Create key")), shown),
      el("div", { class: "panel" }, el("table", { id: "keys" }, el("thead", null, el("tr", null,
        ["id", "name", "created", "state", ""].map(function (h) { return el("th", { text: h }); }))), body))]);
    function load() {
      // live keys only: a revoked key leaves the list (DFF's delete)
      api("GET", "/api/v1/access-keys/do/list?pageSize=1000").then(function (d) {
        body.replaceChildren.apply(body, items(d).map(function (k) {
          return el("tr", { class: "key", "data-id": k.id }, el("td", { class: "mono", text: k.id }), el("td", { class: "key-name", text: k.name }),
            el("td", { text: fmtTime(k.createTime) }),
            el("td", null, badge("live", "on")),
            el("td", null, el("button", { class: "danger key-revoke", onclick: function () {
              if (confirm("Revoke access key " + k.name + "? Clients using it stop working."))
                api("GET", "/api/v1/access-keys/" + encodeURIComponent(k.id) + "/do/delete").then(load).catch(fail);
            } }, "Revoke")));
        }));
      }).catch(fail);
    }
    load();
  }

  /* ---- Users ---------------------------------------------------------- */
  function viewUsers(main) {
    var uname = el("input", { id: "user-name" }), pw = el("input", { id: "user-password", type: "password", autocomplete: "new-password" });
    var body = el("tbody");
    add(main, [el("h1", { text: "Users" }),
      el("div", { class: "panel" }, el("form", { onsubmit: function (ev) {
        ev.preventDefault();
        api("POST", "/api/v1/users/do/add", { data: { username: uname.value, password: pw.value } })
          .then(function () { uname.value = ""; pw.value = ""; load(); }).catch(fail);
      } }, el("label", null, "User name", uname), el("label", null, "Password", pw), el("button", { class: "primary", type: "submit", id: "user-add" }, "Add user"))),
      el("div", { class: "panel" }, el("table", { id: "users" }, el("thead", null, el("tr", null,
        ["user", "name", "state", ""].map(function (h) { return el("th", { text: h }); }))), body))]);
    function load() {
      api("GET", "/api/v1/users/do/list").then(function (d) {
        body.replaceChildren.apply(body, items(d).map(function (u) {
          return el("tr", null, el("td", { class: "mono", text: u.username }), el("td", { text: u.name || "" }),
            el("td", null, u.isDisabled ? badge("disabled", "off") : badge("active", "on")),
            el("td", null, el("button", { onclick: function () {
              api("POST", "/api/v1/users/" + encodeURIComponent(u.id) + "/do/modify", { data: { isDisabled: !u.isDisabled } }).then(load).catch(fail);
            } }, u.isDisabled ? "Enable" : "Disable")));
        }));
      }).catch(fail);
    }
    load();
  }

  route();
})();
