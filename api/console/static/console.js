// The console's charts (overview, delegations, agents), with readJson and PALETTE from common.js. Each chart
// instance is kept on its canvas for tests to inspect.
"use strict";

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

const STATUS_COLOURS = { planned: "#9ca3af", running: "#2563eb", succeeded: "#16a34a", failed: "#dc2626", cancelled: "#6b7280" };

// Delegations as floating bars from start to end (open ones run to now), one row each, on a time axis in ms.
function timelineChart() {
  const canvas = document.getElementById("timeline-chart");
  if (!canvas || canvas.chart) return;  // htmx:load fires for every swap; each new canvas is drawn once
  const rows = JSON.parse(canvas.dataset.timeline);
  const now = Date.now();
  const day = (ms) => new Date(ms).toISOString().slice(0, 16).replace("T", " ");
  const spans = rows.map((r) => [Date.parse(r.start), r.end ? Date.parse(r.end) : now]);
  const first = Math.min(...spans.map((s) => s[0]));
  const last = Math.max(...spans.map((s) => s[1]));
  const margin = Math.max((last - first) * 0.05, 60000);  // bars' axis would otherwise start at 1970
  canvas.chart = new Chart(canvas, {
    type: "bar",
    data: {
      labels: rows.map((r) => r.id),
      datasets: [{
        label: "From start to end",
        data: spans,
        backgroundColor: rows.map((r) => STATUS_COLOURS[r.status] || "#9ca3af"),
        minBarLength: 4,
      }],
    },
    options: {
      indexAxis: "y", responsive: true, maintainAspectRatio: false, animation: false,
      plugins: { legend: { display: false },
                 tooltip: { callbacks: { label: (c) => `${rows[c.dataIndex].status}: ${day(c.raw[0])} → ${rows[c.dataIndex].end ? day(c.raw[1]) : "open"}` } } },
      scales: { x: { type: "linear", min: first - margin, max: last + margin,
                     ticks: { callback: (value) => day(value), maxTicksLimit: 6 } } },
    },
  });
}

document.addEventListener("DOMContentLoaded", () => {
  if (typeof Chart === "undefined") return;
  growthChart();
  kpiCharts();
  successChart();
  timelineChart();
  // htmx replaces the delegations' results when a filter changes: draw the new page's timeline.
  // (htmx:load fires on the new content; the replaced element, which afterSettle names, has left the page.)
  document.body.addEventListener("htmx:load", timelineChart);
});
