// The audit log viewer: filters, a table of events with details, CSV export of the current
// filters and a live tail over WebSocket. It calls the audit API with the caller's bearer
// token (kept in this tab's sessionStorage, never in a URL) and renders every value from an
// event as text.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const meta = (name) => document.querySelector(`meta[name="${name}"]`).content;
  const API = meta("audit-api");
  const LOGIN = meta("audit-login");
  const PAGE = 50;
  const RANGES = { "24h": 1, "7d": 7, "30d": 30, "90d": 90 };
  const FILTERS = ["eventType", "category", "severity", "result", "resourceType", "user", "q", "requestId"];

  let token = sessionStorage.getItem("audit.token") || "";
  let cursor = null;
  let total = 0;
  let socket = null;
  let liveWanted = false;
  let retry = 0;
  let shown = new Set();

  // ---- helpers -------------------------------------------------------------------------

  // Direction controls (RLO, LRI, …) would make `gnp.exe` read as `exe.png`: they are shown
  // as their code points instead of acting.
  const BIDI = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;
  function visible(s) {
    return String(s).replace(BIDI, (c) => `[U+${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, "0")}]`);
  }

  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = visible(v);
      else if (k === "title") e.title = visible(v);
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) {
      if (c !== null && c !== undefined) e.append(typeof c === "string" ? visible(c) : c);
    }
    return e;
  }

  function pad(n) { return String(n).padStart(2, "0"); }

  function localTime(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return String(iso);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function short(s, n) {
    s = s == null ? "" : String(s);
    return s.length > n ? s.slice(0, n) + "…" : s;
  }

  function message(text) { $("message").textContent = text || ""; }

  async function api(path, options) {
    const headers = Object.assign({ authorization: `Bearer ${token}` }, (options || {}).headers);
    const resp = await fetch(API + path, Object.assign({}, options, { headers }));
    if (resp.status === 401) {
      signOut("Your session has ended or the token is not valid. Sign in again.");
      throw new Error("unauthorized");
    }
    return resp;
  }

  async function errorText(resp) {
    try {
      const body = await resp.json();
      return `${body.error.code}: ${body.error.message}`;
    } catch (_) {
      return `HTTP ${resp.status}`;
    }
  }

  // ---- filters and the URL --------------------------------------------------------------

  function readUrl() {
    const p = new URLSearchParams(location.search);
    $("range").value = RANGES[p.get("range")] || p.get("range") === "custom" ? p.get("range") : "30d";
    $("start").value = p.get("start") || "";
    $("end").value = p.get("end") || "";
    for (const f of FILTERS) $(f).value = p.get(f) || "";
    showCustom();
  }

  function writeUrl() {
    const p = new URLSearchParams();
    if ($("range").value !== "30d") p.set("range", $("range").value);
    if ($("range").value === "custom") {
      if ($("start").value) p.set("start", $("start").value);
      if ($("end").value) p.set("end", $("end").value);
    }
    for (const f of FILTERS) if ($(f).value) p.set(f, $(f).value);
    const qs = p.toString();
    history.replaceState(null, "", location.pathname + (qs ? "?" + qs : ""));
  }

  function showCustom() {
    const custom = $("range").value === "custom";
    for (const e of document.querySelectorAll(".custom-range")) e.hidden = !custom;
  }

  // The API's filters for what the form says.
  function filters() {
    const f = {};
    const range = $("range").value;
    if (range === "custom") {
      if ($("start").value) f.startTime = new Date($("start").value).toISOString();
      if ($("end").value) f.endTime = new Date($("end").value).toISOString();
    } else {
      f.startTime = new Date(Date.now() - RANGES[range] * 86400000).toISOString();
    }
    for (const k of ["eventType", "category", "severity", "result", "resourceType", "q", "requestId"]) {
      const v = $(k).value.trim();
      if (v) f[k] = v;
    }
    const user = $("user").value.trim();
    if (user) f[user.includes("@") ? "actorEmail" : "actorId"] = user;
    return f;
  }

  // ---- rendering -------------------------------------------------------------------------

  function badgeClass(e) {
    const t = e.eventType || "";
    if (/\.(delete|revoke|purge)(\.|$)/.test(t) || t.includes("api_key")) return "destructive";
    return { authentication: "auth", data: "data", admin: "admin", security: "security" }[e.category] || "system";
  }

  function detailList(e) {
    const a = e.actor || {}, t = e.target || {}, c = e.context || {};
    const dl = el("dl");
    const row = (name, value) => {
      if (value === undefined || value === null || value === "") return;
      dl.append(el("dt", { text: name }), el("dd", {}, value));
    };
    row("Event id", el("span", { class: "mono", text: e.id }));
    row("User id", a.id && el("span", { class: "mono", text: a.id }));
    row("User e-mail", a.email);
    row("Role", a.role);
    row("Resource", t.type && `${t.type}${t.id ? " / " : ""}${t.id || ""}`);
    row("IP address", a.ipAddress);
    row("Tenant", c.organizationId);
    row("User agent", a.userAgent);
    if (c.requestId) {
      row("Request id", el("button", {
        type: "button", class: "link mono", text: c.requestId,
        title: "Show everything this request did",
        onclick: () => { $("requestId").value = c.requestId; apply(); },
      }));
    }
    row("Trace id", c.traceId && el("span", { class: "mono", text: c.traceId }));
    row("Result", e.result);
    row("Severity", e.severity);
    return dl;
  }

  function rowFor(e, fresh) {
    const a = e.actor || {}, t = e.target || {};
    const expand = el("button", {
      type: "button", class: "expand", "aria-expanded": "false",
      "aria-label": `Details of ${e.eventType} at ${localTime(e.timestamp)}`, text: "▸",
    });
    const time = el("td", { class: "time", title: `${e.timestamp} (UTC)`, text: localTime(e.timestamp) });
    const user = el("td", {}, el("span", { class: "mono", title: a.id || a.email || "", text: short(a.id || a.email || a.type || "", 14) }));
    if (a.role) user.append(" ", el("span", { class: "badge role", text: a.role }));
    const tr = el("tr", { class: fresh ? "fresh" : "" },
      el("td", {}, expand),
      time,
      el("td", {}, el("span", { class: `badge ${badgeClass(e)}`, text: e.eventType })),
      el("td", {}, t.type || "", t.id ? el("span", { class: "mono", title: t.id, text: " " + short(t.id, 12) }) : null),
      user,
      el("td", { text: e.description || "" }),
      el("td", { class: "ip mono", text: a.ipAddress || "" }),
    );
    let details = null;
    expand.addEventListener("click", () => {
      const open = expand.getAttribute("aria-expanded") === "true";
      expand.setAttribute("aria-expanded", String(!open));
      expand.textContent = open ? "▸" : "▾";
      if (open) { details.remove(); details = null; return; }
      details = el("tr", { class: "details" },
        el("td", { colspan: "7" }, detailList(e), el("pre", { class: "mono", text: JSON.stringify(e, null, 2) })));
      tr.after(details);
    });
    return tr;
  }

  function renderSummary(summary) {
    total = (summary && summary.totalEvents) || 0;
    const parts = Object.entries((summary && summary.byCategory) || {}).map(([k, v]) => `${k} ${v}`);
    $("summary").textContent = `${total} events` + (parts.length ? ` — ${parts.join(", ")}` : "");
    $("export").disabled = total === 0;
  }

  // ---- loading ---------------------------------------------------------------------------

  async function load(append) {
    const p = new URLSearchParams(filters());
    p.set("limit", String(PAGE));
    if (append && cursor) p.set("cursor", cursor);
    let resp;
    try {
      resp = await api(`/logs?${p}`);
    } catch (_) { return; }
    if (!resp.ok) {
      $("rows").replaceChildren();
      renderSummary(null);
      $("more").hidden = true;
      message(resp.status === 403
        ? `You are signed in but may not read this audit log (${await errorText(resp)}).`
        : await errorText(resp));
      return;
    }
    message("");
    const page = await resp.json();
    if (!append) { $("rows").replaceChildren(); shown = new Set(); }
    for (const e of page.logs) {
      if (shown.has(e.id)) continue;
      shown.add(e.id);
      $("rows").append(rowFor(e, false));
    }
    renderSummary(page.summary);
    cursor = page.pagination.nextCursor;
    $("more").hidden = !page.pagination.hasMore;
  }

  async function loadFilterValues() {
    let resp;
    try { resp = await api("/filters"); } catch (_) { return; }
    if (!resp.ok) return;
    const body = await resp.json();
    const select = $("eventType");
    const wanted = new URLSearchParams(location.search).get("eventType") || "";
    for (const t of body.eventTypes || []) select.append(el("option", { value: t, text: t }));
    select.value = wanted;
    const kinds = (body.filters.find((f) => f.name === "resourceType") || {}).values || [];
    $("resource-types").replaceChildren(...kinds.map((k) => el("option", { value: k })));
  }

  function apply() {
    writeUrl();
    cursor = null;
    load(false);
    if (liveWanted) connect();
  }

  // ---- export ----------------------------------------------------------------------------

  async function exportCsv() {
    let resp;
    try {
      resp = await api("/export", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ format: "csv", filters: filters() }),
      });
    } catch (_) { return; }
    if (resp.status === 429) {
      const after = resp.headers.get("retry-after");
      message(`Too many exports for now; try again${after ? ` in ${after} s` : " later"}.`);
      return;
    }
    if (!resp.ok) { message(await errorText(resp)); return; }
    const blob = await resp.blob();
    const url = URL.createObjectURL(blob);
    const a = el("a", { href: url, download: `audit-${new Date().toISOString().slice(0, 10)}.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  // ---- live tail -------------------------------------------------------------------------

  function liveState(state, text) {
    $("live-state").dataset.state = state;
    $("live-state").textContent = `Live: ${text}`;
  }

  function disconnect() {
    if (socket) { const s = socket; socket = null; s.onclose = null; s.close(); }
  }

  function connect() {
    disconnect();
    const p = new URLSearchParams(filters());
    p.delete("startTime");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const s = new WebSocket(`${scheme}://${location.host}${API}/ws?${p}`, ["audit.v1", `bearer.${token}`]);
    socket = s;
    liveState("connecting", "connecting…");
    s.onopen = () => { retry = 0; liveState("live", "on"); };
    s.onmessage = (m) => {
      let msg;
      try { msg = JSON.parse(m.data); } catch (_) { return; }
      if (msg.type === "event" && !shown.has(msg.event.id)) {
        shown.add(msg.event.id);
        $("rows").prepend(rowFor(msg.event, true));
        total += 1;
        $("export").disabled = false;
      } else if (msg.type === "lagged") {
        message("Live tail fell behind; some events are not shown. Reload to see them all.");
      } else if (msg.type === "closed" && msg.reason === "revoked") {
        liveWanted = false;
        $("live").checked = false;
        message("Live tail stopped: your access was revoked.");
      }
    };
    s.onclose = () => {
      if (socket !== s) return;
      socket = null;
      if (!liveWanted) { liveState("off", "off"); return; }
      retry = Math.min(retry + 1, 5);
      const wait = 500 * 2 ** retry;
      liveState("reconnecting", `reconnecting in ${Math.round(wait / 1000)} s…`);
      setTimeout(() => { if (liveWanted && !socket) connect(); }, wait);
    };
  }

  // ---- signing in and out ----------------------------------------------------------------

  function signOut(text) {
    token = "";
    sessionStorage.removeItem("audit.token");
    liveWanted = false;
    disconnect();
    $("viewer").hidden = true;
    $("who").hidden = true;
    $("rows").replaceChildren();
    $("summary").textContent = "";
    message("");
    $("sign-in").hidden = false;
    $("sign-in-message").textContent = text || "";
  }

  function signedIn(t) {
    token = t;
    sessionStorage.setItem("audit.token", t);
    $("sign-in").hidden = true;
    $("viewer").hidden = false;
    $("who").hidden = false;
    liveState("off", "off");
    loadFilterValues();
    load(false);
  }

  async function login(ev) {
    ev.preventDefault();
    const resp = await fetch(LOGIN, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: $("login-email").value, password: $("login-password").value }),
    });
    const body = await resp.json().catch(() => ({}));
    if (!resp.ok || !body.token) {
      $("sign-in-message").textContent = "Wrong e-mail or password.";
      return;
    }
    $("login-password").value = "";
    signedIn(body.token);
  }

  // ---- wiring ----------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    readUrl();
    $("login-form").hidden = !LOGIN;
    $("login-form").addEventListener("submit", login);
    $("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const t = $("token").value.trim();
      $("token").value = "";
      if (t) signedIn(t);
    });
    $("sign-out").addEventListener("click", () => signOut(""));
    $("range").addEventListener("change", showCustom);
    $("filters").addEventListener("submit", (ev) => { ev.preventDefault(); apply(); });
    $("reset").addEventListener("click", () => {
      $("range").value = "30d";
      for (const f of FILTERS) $(f).value = "";
      showCustom();
      apply();
    });
    $("more").addEventListener("click", () => load(true));
    $("export").addEventListener("click", exportCsv);
    $("live").addEventListener("change", () => {
      liveWanted = $("live").checked;
      if (liveWanted) connect(); else { disconnect(); liveState("off", "off"); }
    });
    if (token) signedIn(token); else signOut("");
  });
})();
