/* Admin dashboard: fetches the staff-only JSON and draws it with Chart.js (served by us).
   No inline script in the page, and text goes in through textContent, so a strict CSP can
   apply and nothing from the data is parsed as HTML. */
(function () {
  "use strict";
  var root = document.getElementById("dashboard");
  if (!root) return;
  var status = document.getElementById("dashboard-status");
  var COLORS = ["#417690", "#e07a5f", "#81b29a", "#f2cc8f", "#9b5de5", "#3d405b", "#bbb"];

  function el(tag, text) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function table(head, rows) {
    var t = el("table"), tr = el("tr");
    head.forEach(function (h) { tr.appendChild(el("th", h)); });
    var thead = el("thead"); thead.appendChild(tr); t.appendChild(thead);
    var body = el("tbody");
    rows.forEach(function (row) {
      var r = el("tr");
      row.forEach(function (cell) { r.appendChild(el("td", cell)); });
      body.appendChild(r);
    });
    t.appendChild(body);
    return t;
  }

  function chart(id, config) {
    config.options = Object.assign({ animation: false, responsive: true, maintainAspectRatio: false }, config.options || {});
    return new window.Chart(document.getElementById(id), config);
  }

  function topLists(target, bySegment) {
    var box = document.getElementById(target);
    box.replaceChildren();
    var segments = Object.keys(bySegment).sort();
    if (!segments.length) { box.appendChild(el("p", "No engagement in the last 7 days.")); return; }
    segments.forEach(function (segment) {
      box.appendChild(el("h3", segment));
      box.appendChild(table(["item", "events"], bySegment[segment].map(function (x) {
        return [x.item, x.count];
      })));
    });
  }

  function draw(data) {
    var codes = Object.keys(data.segments);
    chart("chart-segments", {
      type: "doughnut",
      data: { labels: codes, datasets: [{ data: codes.map(function (c) { return data.segments[c]; }),
        backgroundColor: COLORS }] },
    });
    chart("chart-hourly", {
      type: "line",
      data: { labels: data.events_per_hour.map(function (p) { return p.hour.slice(5, 13).replace("T", " "); }),
        datasets: [{ label: "events", data: data.events_per_hour.map(function (p) { return p.count; }),
          borderColor: COLORS[0], backgroundColor: COLORS[0], pointRadius: 0, fill: false }] },
      options: { scales: { y: { beginAtZero: true } } },
    });
    chart("chart-top-events", {
      type: "bar",
      data: { labels: data.top_events.map(function (e) { return e.event_name; }),
        datasets: [{ label: "events", data: data.top_events.map(function (e) { return e.count; }),
          backgroundColor: COLORS[1] }] },
      options: { indexAxis: "y" },
    });
    var conv = Object.keys(data.conversion).sort();
    chart("chart-conversion", {
      type: "bar",
      data: { labels: conv, datasets: ["personalized", "holdout"].map(function (arm, i) {
        return { label: arm, backgroundColor: COLORS[i + 2],
          data: conv.map(function (s) { return data.conversion[s][arm].rate * 100; }) };
      }) },
      options: { scales: { y: { beginAtZero: true, title: { display: true, text: "% converted" } } } },
    });
    var cache = data.cache;
    document.getElementById("cache-rate").textContent =
      cache.rate === null ? "no reads yet" : (cache.rate * 100).toFixed(1) + " %";
    document.getElementById("cache-detail").textContent = cache.hits + " hits, " + cache.misses + " misses";
    document.getElementById("cache-note").textContent = cache.note;
    topLists("top-projects", data.top_projects);
    topLists("top-skills", data.top_skills);
    var insight = data.latest_insight, box = document.getElementById("latest-insight");
    if (insight) {
      box.replaceChildren(
        el("p", insight.created_at + " · " + insight.provider + " " + insight.model + " · " + insight.status),
        el("p", insight.summary));
    }
  }

  fetch(root.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
    .then(function (data) {
      draw(data);
      status.textContent = "Last 7 days up to " + data.generated_at.slice(0, 16).replace("T", " ") + " UTC.";
      root.dataset.state = "ready";
    })
    .catch(function (err) {
      status.textContent = "Could not load the dashboard data: " + err.message;
      root.dataset.state = "error";
    });
})();
