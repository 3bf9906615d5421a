// The console's charts. Data comes from <script type="application/json"> blocks, so no page runs inline script
// (the Content-Security-Policy forbids it). Each chart instance is kept on its canvas for tests to inspect.
"use strict";

function readJson(id) {
  const block = document.getElementById(id);
  return block ? JSON.parse(block.textContent) : null;
}

function growthChart() {
  const canvas = document.getElementById("growth-chart");
  const data = readJson("growth-data");
  if (!canvas || !data) return;
  canvas.chart = new Chart(canvas, {
    type: "line",
    data: {
      labels: data.days,
      datasets: [
        { label: "Entities", data: data.entities, borderColor: "#2563eb", backgroundColor: "#2563eb", tension: 0.2 },
        { label: "Observations", data: data.observations, borderColor: "#16a34a", backgroundColor: "#16a34a", tension: 0.2 },
      ],
    },
    options: { responsive: true, maintainAspectRatio: false, animation: false, scales: { y: { beginAtZero: true } } },
  });
}

function kpiCharts() {
  for (const canvas of document.querySelectorAll("canvas.kpi-chart")) {
    const data = readJson(canvas.dataset.source);
    if (!data) continue;
    canvas.chart = new Chart(canvas, {
      type: "bar",
      data: { labels: data.labels, datasets: [{ label: data.label, data: data.values, backgroundColor: "#7c3aed" }] },
      options: { responsive: true, maintainAspectRatio: false, animation: false, indexAxis: "y",
                 plugins: { legend: { display: false } } },
    });
  }
}

const PALETTE = ["#111827", "#2563eb", "#16a34a", "#dc2626", "#7c3aed", "#ea580c", "#0891b2", "#db2777", "#65a30d"];

function successChart() {
  const canvas = document.getElementById("success-chart");
  const data = readJson("success-data");
  if (!canvas || !data) return;
  canvas.chart = new Chart(canvas, {
    type: "line",
    data: {
      labels: data.weeks,
      datasets: data.series.map((s, i) => ({
        label: s.agent, data: s.rates, spanGaps: true, tension: 0.2,
        borderColor: PALETTE[i % PALETTE.length], backgroundColor: PALETTE[i % PALETTE.length],
      })),
    },
    options: { responsive: true, maintainAspectRatio: false, animation: false,
               scales: { y: { min: 0, max: 1, title: { display: true, text: "success rate" } } } },
  });
}

document.addEventListener("DOMContentLoaded", () => {
  if (typeof Chart === "undefined") return;
  growthChart();
  kpiCharts();
  successChart();
});
