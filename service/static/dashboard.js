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
    for (const other of table.querySelectorAll("th")) other.setAttribute("aria-sort", "none");
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
    table.querySelectorAll("th").forEach((th, index) => {
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

  if (data.trend && data.trend.length) {
    draw("chart-trend", {
      type: "line",
      data: {
        labels: data.trend.map((r) => r.date),
        datasets: [
          { label: "VES (1-7)", data: data.trend.map((r) => r.ves), borderColor: blue, backgroundColor: blue, yAxisID: "ves", spanGaps: true },
          { label: "success %", data: data.trend.map((r) => (r.success_rate === null ? null : r.success_rate * 100)), borderColor: teal, backgroundColor: teal, yAxisID: "rate", spanGaps: true },
        ],
      },
      options: {
        scales: {
          ves: { position: "left", min: 1, max: 7, title: { display: true, text: "VES" } },
          rate: { position: "right", min: 0, max: 100, grid: { drawOnChartArea: false }, title: { display: true, text: "%" } },
        },
      },
    });
  }

  if (data.uplift && data.uplift.length) {
    draw("chart-uplift", {
      type: "bar",
      data: {
        labels: data.uplift.map((r) => r.measure),
        datasets: [
          { type: "bar", label: "95% CI", data: data.uplift.map((r) => (r.ci_low === null ? null : [r.ci_low, r.ci_high])), backgroundColor: "rgba(37,99,235,0.25)", borderColor: blue, borderWidth: 1, barPercentage: 0.4 },
          { type: "line", label: "treated − holdout", data: data.uplift.map((r) => r.value), showLine: false, pointRadius: 6, pointStyle: "rectRot", borderColor: "#1e3a8a", backgroundColor: "#1e3a8a" },
        ],
      },
      options: { scales: { y: { title: { display: true, text: "uplift" } } } },
    });
  }

  if (data.by_activity && data.by_activity.length) {
    draw("chart-activity", {
      type: "bar",
      data: {
        labels: data.by_activity.map((r) => r.group),
        datasets: [{ label: "success %", data: data.by_activity.map((r) => (r.success_rate === null ? null : r.success_rate * 100)), backgroundColor: teal }],
      },
      options: { indexAxis: "y", scales: { x: { min: 0, max: 100 } }, plugins: { legend: { display: false } } },
    });
  }

  if (data.drift && data.drift.features && data.drift.features.length) {
    const threshold = data.drift.threshold;
    draw("chart-drift", {
      type: "bar",
      data: {
        labels: data.drift.features.map((f) => f.feature),
        datasets: [{ label: "PSI", data: data.drift.features.map((f) => f.psi), backgroundColor: data.drift.features.map((f) => (f.psi !== null && f.psi > threshold ? red : grey)) }],
      },
      options: { plugins: { legend: { display: false }, title: { display: true, text: "threshold " + threshold } } },
    });
  }
})();
