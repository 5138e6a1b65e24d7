/* The pool-health page: draws the history chart from the report and refreshes it from the JSON form. */
(function () {
  "use strict";
  var root = document.getElementById("mp-root");
  var initial = document.getElementById("mp-report");
  if (!root || !initial) { return; }
  var url = root.dataset.jsonUrl, every = parseInt(root.dataset.refresh, 10) * 1000;
  var svg = document.getElementById("mp-chart");
  var box = svg.viewBox.baseVal, PAD = 4;

  function get(obj, path) {
    return path.split(".").reduce(function (o, k) { return o == null ? o : o[k]; }, obj);
  }
  /* y of a value on a scale whose top is `top` (the larger of maxPoolSize and the data). */
  function y(value, top) {
    return (box.height - PAD - (value / top) * (box.height - 2 * PAD)).toFixed(1);
  }
  function points(history, field, top) {
    var step = (box.width - 2 * PAD) / Math.max(history.length - 1, 1);
    return history.map(function (s, i) {
      return (PAD + i * step).toFixed(1) + "," + y(s[field], top);
    }).join(" ");
  }
  function draw(history, maxPool) {
    var top = Math.max(maxPool, 1);
    history.forEach(function (s) { top = Math.max(top, s.open, s.in_use, s.waiting); });
    svg.querySelectorAll("polyline[data-series]").forEach(function (line) {
      line.setAttribute("points", points(history, line.dataset.series, top));
    });
    var limit = svg.querySelector("line.mp-limit");
    limit.setAttribute("y1", y(maxPool, top));
    limit.setAttribute("y2", y(maxPool, top));
  }
  function list(id, items, cls) {
    var ul = document.getElementById(id);
    if (!ul) { return; }
    ul.replaceChildren.apply(ul, items.map(function (t) {
      var li = document.createElement("li");
      if (cls) { li.className = cls; }
      li.textContent = t;
      return li;
    }));
  }
  function dash(v) { return v == null ? "-" : v; }
  function reasons(counts) {
    var keys = Object.keys(counts || {});
    return keys.length ? keys.map(function (k) { return k + ": " + counts[k]; }).join(", ") : "none";
  }
  function rows(tableId, items, values) {
    var table = document.getElementById(tableId);
    if (!table) { return; }
    var body = table.querySelector("tbody");
    body.replaceChildren.apply(body, items.map(function (item) {
      var tr = document.createElement("tr");
      values(item).forEach(function (v, i) {
        var td = document.createElement("td");
        if (i > 0 && typeof v === "number") { td.className = "num"; }
        td.textContent = v;
        tr.appendChild(td);
      });
      return tr;
    }));
  }
  function apply(report) {
    root.querySelectorAll("[data-field]").forEach(function (el) {
      var field = el.dataset.field, value = get(report, field);
      if (field === "server.reachable") { value = value ? "yes" : "no"; }
      else if (field === "server.utilisation_percent") { value = value == null ? "not reported" : value + "%"; }
      if (value !== undefined && value !== null) { el.textContent = value; }
    });
    draw(report.process.history || [], report.budget.max_pool_size);
    if (report.process.servers.length) {
      rows("mp-servers", report.process.servers, function (s) {
        return [s.pool, s.address, s.open, s.in_use, s.idle, s.waiting, s.checkouts, reasons(s.checkout_failures),
                dash(s.wait_ms_p50) + " / " + dash(s.wait_ms_p95) + " / " + dash(s.wait_ms_p99),
                s.connections_created, reasons(s.connections_closed), s.pool_clears];
      });
    }
    if (report.fleet) {
      var table = document.getElementById("mp-fleet"), none = document.getElementById("mp-fleet-none");
      if (table) { table.hidden = !report.fleet.processes.length; }
      if (none && report.config.heartbeat_seconds) { none.hidden = !!report.fleet.processes.length; }
      rows("mp-fleet", report.fleet.processes, function (p) {
        return [p.host, p.pid, p.role, p.app, p.max_pool_size, p.open, p.in_use, p.waiting, p.checkout_timeouts,
                p.sessions_ended + "/" + p.sessions_started, p.age_seconds + "s"];
      });
    }
    list("mp-warnings", report.warnings, "warning");
    list("mp-notes", report.notes);
    root.dataset.generatedAt = report.generated_at;
  }
  function refresh() {
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (report) { if (report) { apply(report); } })
      .catch(function () {})
      .then(function () { window.setTimeout(refresh, every); });
  }

  document.getElementById("mp-chart-box").hidden = false;
  apply(JSON.parse(initial.textContent));
  window.setTimeout(refresh, every);
})();
