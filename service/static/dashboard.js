// Value dashboard: sortable tables and the charts (Chart.js, vendored under vendor/).
"use strict";

(function () {
  // ------------------------------------------------------------------ sorting
  function sortValue(td) {
    const raw = td.dataset.value;
    if (raw === "" || raw === undefined) return null;
    if (raw === "True" || raw === "False") return raw === "True" ? 1 : 0;
    const number = Number(raw);
    return Number.isNaN(number) ? raw.toLowerCase() : number;
  }

  function sortTable(table, index, th) {
    const ascending = th.getAttribute("aria-sort") !== "ascending";
    for (const other of table.querySelectorAll("thead th")) other.setAttribute("aria-sort", "none");
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    const body = table.tBodies[0];
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = sortValue(a.cells[index]);
      const y = sortValue(b.cells[index]);
      if (x === y) return 0;
      if (x === null) return 1; // empty cells last either way
      if (y === null) return -1;
      const order = x < y ? -1 : 1;
      return ascending ? order : -order;
    });
    for (const row of rows) body.appendChild(row);
  }

  for (const table of document.querySelectorAll("table.sortable")) {
    // Column headers only: each row's first cell is a row header (th scope=row).
    table.querySelectorAll("thead th").forEach((th, index) => {
      th.querySelector("button").addEventListener("click", () => sortTable(table, index, th));
    });
  }

  // ------------------------------------------------------------------- charts
  const dataNode = document.getElementById("chart-data");
  if (!dataNode || typeof Chart === "undefined") return;
  const data = JSON.parse(dataNode.textContent);
  const blue = "#2563eb", teal = "#0d9488", grey = "#94a3b8", red = "#dc2626";
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.color = "#334155";
  Chart.defaults.animation = false; // steady screenshots and no motion for reduced-motion users
  Chart.defaults.maintainAspectRatio = false;

  function draw(id, config) {
    const canvas = document.getElementById(id);
    if (canvas) canvas.chart = new Chart(canvas, config);
  }

  const words = data.labels || {};
  // The zero line of a difference chart stands out: above it the treated arm does better.
  const zeroLine = { color: (ctx) => (ctx.tick && ctx.tick.value === 0 ? "#334155" : "rgba(0,0,0,0.1)") };

  if (data.trend && data.trend.length) {
    // A day or week without contacts is null: the lines break there (spanGaps off)
    // instead of joining the days around it as if they were adjacent.
    draw("chart-trend", {
      type: "line",
      data: {
        labels: data.trend.map((r) => r.date),
        datasets: [
          { label: words.ves, data: data.trend.map((r) => r.ves), borderColor: blue, backgroundColor: blue, yAxisID: "ves", spanGaps: false },
          // Dashed, with triangles: the two lines differ by more than their colour.
          { label: words.success_pct, data: data.trend.map((r) => (r.success_rate === null ? null : r.success_rate * 100)), borderColor: teal, backgroundColor: teal, yAxisID: "rate", spanGaps: false, borderDash: [6, 4], pointStyle: "triangle", pointRadius: 4 },
        ],
      },
      options: {
        plugins: { legend: { labels: { usePointStyle: true } } },
        scales: {
          ves: { position: "left", min: 1, max: 7, title: { display: true, text: words.ves } },
          rate: { position: "right", min: 0, max: 100, grid: { drawOnChartArea: false }, title: { display: true, text: words.success_pct } },
        },
      },
    });
  }

  if (data.uplift && data.uplift.length) {
    // Rates in percentage points on the left axis, VES points on the right: one axis for
    // both drew +31.6 pp as 0.32 beside a VES difference of 1.05.
    const on = (axis, pick) => data.uplift.map((r) => (r.axis === axis ? pick(r) : null));
    const interval = (r) => (r.ci_low === null ? null : [r.ci_low, r.ci_high]);
    const datasets = [];
    for (const axis of ["rate", "points"]) {
      if (!data.uplift.some((r) => r.axis === axis)) continue;
      datasets.push(
        { type: "bar", label: words.ci, data: on(axis, interval), yAxisID: axis, grouped: false, backgroundColor: "rgba(37,99,235,0.25)", borderColor: blue, borderWidth: 1, barPercentage: 0.4 },
        { type: "line", label: words.difference, data: on(axis, (r) => r.value), yAxisID: axis, showLine: false, pointRadius: 6, pointStyle: "rectRot", borderColor: "#1e3a8a", backgroundColor: "#1e3a8a" },
      );
    }
    draw("chart-uplift", {
      type: "bar",
      data: { labels: data.uplift.map((r) => r.measure), datasets },
      options: {
        // One legend entry per kind, not per axis.
        plugins: { legend: { labels: { filter: (item) => item.datasetIndex < 2 } } },
        scales: {
          // Bounds from the server (uplift_axes): zero at the same height on both axes.
          rate: { position: "left", ...data.uplift_axes.rate, grid: zeroLine, title: { display: true, text: words.rate_axis } },
          points: { position: "right", ...data.uplift_axes.points, grid: { drawOnChartArea: false }, title: { display: true, text: words.points_axis } },
        },
      },
    });
  }

  if (data.by_activity && data.by_activity.length) {
    draw("chart-activity", {
      type: "bar",
      data: {
        labels: data.by_activity.map((r) => r.group),
        datasets: [{ label: words.success_pct, data: data.by_activity.map((r) => (r.success_rate === null ? null : r.success_rate * 100)), backgroundColor: teal }],
      },
      options: { indexAxis: "y", scales: { x: { min: 0, max: 100, title: { display: true, text: words.success_pct } } }, plugins: { legend: { display: false } } },
    });
  }

  if (data.drift && data.drift.features && data.drift.features.length) {
    const threshold = data.drift.threshold;
    const features = data.drift.features;
    draw("chart-drift", {
      type: "bar",
      data: {
        labels: features.map((f) => f.label || f.feature),
        datasets: [
          { label: words.psi, data: features.map((f) => f.psi), backgroundColor: features.map((f) => (f.psi !== null && f.psi > threshold ? red : grey)) },
          // The threshold as a dashed line, on an axis that reaches it (data.drift.axis_max).
          { type: "line", label: data.drift.threshold_label, data: features.map(() => threshold), borderColor: red, borderDash: [6, 4], borderWidth: 1.5, pointRadius: 0 },
        ],
      },
      options: { scales: { y: { min: 0, max: data.drift.axis_max, title: { display: true, text: words.psi } } } },
    });
  }
})();
