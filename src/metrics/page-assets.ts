// The status page's three static files, served by ./server.ts at /, /app.js and /app.css. The
// HTML holds nothing from the manifests: the script fetches /api/objects (./page.ts) every 2 s
// and builds the table with createElement and textContent only, so no value is ever parsed as
// HTML. The Content-Security-Policy (script-src 'self', style-src 'self', connect-src 'self')
// allows exactly these files and that one endpoint; nothing is loaded from elsewhere.

/** How often the page polls /api/objects. */
export const PAGE_REFRESH_MS = 2_000;

export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>kvmctl status</title>
<link rel="stylesheet" href="app.css">
<script src="app.js" defer></script>
</head>
<body>
<header>
<h1>kvmctl status</h1>
<p id="summary">loading…</p>
<p id="state" class="state">connecting…</p>
</header>
<main>
<table id="objects">
<thead><tr><th>KIND</th><th>NAME</th><th>READY</th><th>REASON</th><th>PHASE</th><th>MESSAGE</th></tr></thead>
</table>
<p id="empty" hidden>No objects.</p>
</main>
<noscript><p>This page needs JavaScript; <code>kvmctl get -A -o wide</code> and <code>kvmctl events</code> show the same.</p></noscript>
</body>
</html>
`;

export const PAGE_CSS = `:root { color-scheme: light; font: 14px/1.4 system-ui, sans-serif; color: #1d2330; background: #f6f7f9; }
body { margin: 0 auto; padding: 16px 24px; max-width: 1400px; }
h1 { font-size: 20px; margin: 0 0 4px; }
header p { margin: 2px 0; color: #4a5261; }
.state.error { color: #b42318; font-weight: 600; }
table { border-collapse: collapse; width: 100%; margin-top: 12px; background: #fff; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
th, td { text-align: left; padding: 6px 10px; vertical-align: top; }
thead th { background: #e9ecf1; font-size: 12px; letter-spacing: .04em; }
tbody.object { border-top: 1px solid #dde1e7; }
td.name { font-weight: 600; font-family: ui-monospace, monospace; }
td.message { white-space: pre-wrap; word-break: break-word; }
.ready { display: inline-block; min-width: 64px; padding: 1px 8px; border-radius: 10px; font-weight: 600; text-align: center; }
.ready-True { background: #d1fadf; color: #05603a; }
.ready-False { background: #fee4e2; color: #b42318; }
.ready-Unknown { background: #eaecf0; color: #344054; }
tr.events td { padding: 0 10px 8px 28px; }
table.events { margin: 0; width: auto; box-shadow: none; font-size: 12px; }
table.events td:not(.event-message) { white-space: nowrap; }
table.events th { background: none; color: #667085; padding: 2px 8px; }
table.events td { padding: 2px 8px; }
td.event-message { white-space: pre-wrap; word-break: break-word; }
.Warning { color: #b54708; font-weight: 600; }
.none { color: #98a2b3; font-style: italic; }
`;

export const PAGE_JS = `"use strict";
(function () {
  var REFRESH_MS = ${PAGE_REFRESH_MS};
  // Every value from the server goes through textContent: nothing is parsed as HTML.
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function cell(row, className, text) {
    var td = el("td", className, text);
    row.appendChild(td);
    return td;
  }
  function ago(iso, nowMs) {
    var t = Date.parse(iso);
    if (isNaN(t)) return "-";
    var s = Math.max(0, Math.round((nowMs - t) / 1000));
    if (s < 120) return s + "s ago";
    if (s < 7200) return Math.round(s / 60) + "m ago";
    if (s < 172800) return Math.round(s / 3600) + "h ago";
    return Math.round(s / 86400) + "d ago";
  }
  var READY = { True: "True", False: "False", Unknown: "Unknown" };
  function objectBody(object, nowMs) {
    var body = el("tbody", "object");
    body.setAttribute("data-key", object.kind + "/" + object.name);
    var row = el("tr", "object-row");
    cell(row, "kind", object.kind);
    cell(row, "name", object.name);
    var status = READY[object.ready && object.ready.status] || "Unknown";
    cell(row, "ready-cell").appendChild(el("span", "ready ready-" + status, status));
    cell(row, "reason", (object.ready && object.ready.reason) || "-");
    cell(row, "phase", object.phase || "-");
    cell(row, "message", object.message || "-");
    body.appendChild(row);
    var eventsRow = el("tr", "events");
    var td = el("td");
    td.colSpan = 6;
    var events = Array.isArray(object.events) ? object.events : [];
    if (events.length === 0) {
      td.appendChild(el("span", "none", "no recent events"));
    } else {
      var table = el("table", "events");
      var head = el("tr");
      ["TYPE", "REASON", "COUNT", "LAST SEEN", "MESSAGE"].forEach(function (h) { head.appendChild(el("th", null, h)); });
      var thead = el("thead");
      thead.appendChild(head);
      table.appendChild(thead);
      var tbody = el("tbody");
      events.forEach(function (event) {
        var tr = el("tr", "event");
        cell(tr, event.type === "Warning" ? "Warning" : "Normal", event.type === "Warning" ? "Warning" : "Normal");
        cell(tr, "event-reason", event.reason);
        cell(tr, "event-count", event.count);
        var seen = cell(tr, "event-seen", ago(event.lastSeen, nowMs));
        seen.title = "last " + event.lastSeen + ", first " + event.firstSeen;
        cell(tr, "event-message", event.message);
        tbody.appendChild(tr);
      });
      table.appendChild(tbody);
      td.appendChild(table);
    }
    eventsRow.appendChild(td);
    body.appendChild(eventsRow);
    return body;
  }
  function render(data) {
    var nowMs = Date.parse(data.generatedAt);
    if (isNaN(nowMs)) nowMs = Date.now();
    var table = document.getElementById("objects");
    var old = table.querySelectorAll("tbody.object");
    for (var i = 0; i < old.length; i++) table.removeChild(old[i]);
    var objects = Array.isArray(data.objects) ? data.objects : [];
    var ready = 0;
    objects.forEach(function (object) {
      if (object.ready && object.ready.status === "True") ready++;
      table.appendChild(objectBody(object, nowMs));
    });
    document.getElementById("empty").hidden = objects.length > 0 || !data.loaded;
    document.getElementById("summary").textContent = data.loaded
      ? objects.length + " object" + (objects.length === 1 ? "" : "s") + ", " + ready + " ready; " + (data.controllerReady ? "first full pass done" : "first full pass in progress")
      : "the controller has not read the manifest directory yet";
  }
  function setState(text, error) {
    var node = document.getElementById("state");
    node.textContent = text;
    node.className = error ? "state error" : "state";
  }
  function refresh() {
    fetch("api/objects", { cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      })
      .then(function (data) {
        render(data);
        setState("updated " + new Date(data.generatedAt).toLocaleTimeString() + " (every " + REFRESH_MS / 1000 + " s)", false);
      })
      .catch(function (error) {
        setState("could not refresh: " + (error && error.message ? error.message : String(error)) + "; retrying", true);
      })
      .then(function () { setTimeout(refresh, REFRESH_MS); });
  }
  refresh();
})();
`;
