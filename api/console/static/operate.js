// The operator pages' charts and graph (ML memory, the analyst console), with readJson and seriesColour from
// common.js.
// Each Chart.js instance is kept on its canvas, and the Cytoscape instance on its container, for tests to inspect.
"use strict";


// Features on the axis, one bar per version: how each feature's importance moved across versions.
function featuresChart() {
  const canvas = document.getElementById("features-chart");
  const data = readJson("features-data");
  if (!canvas || !data || typeof Chart === "undefined") return;
  canvas.chart = new Chart(canvas, {
    type: "bar",
    data: {
      labels: data.features.map((f) => f.feature),
      datasets: data.versions.map((version, i) => ({
        label: `v${version}`, data: data.features.map((f) => f.importance[i]),
        backgroundColor: seriesColour(i),
      })),
    },
    options: { responsive: true, maintainAspectRatio: false, animation: false, indexAxis: "y",
               scales: { x: { title: { display: true, text: "importance" } } } },
  });
}

// One line per metric across the runs, oldest run first.
function runsChart() {
  const canvas = document.getElementById("runs-chart");
  const data = readJson("runs-data");
  if (!canvas || !data || typeof Chart === "undefined") return;
  canvas.chart = new Chart(canvas, {
    type: "line",
    data: {
      labels: data.runs,
      datasets: data.metrics.map((m, i) => ({
        label: m.metric, data: m.values, spanGaps: true, tension: 0.2,
        borderColor: seriesColour(i), backgroundColor: seriesColour(i),
      })),
    },
    options: { responsive: true, maintainAspectRatio: false, animation: false },
  });
}

const CYTOSCAPE_STYLESHEET = "__________cytoscape_stylesheet";

// The nodes and relationships a Cypher result returned, laid out by Cytoscape.js.
function resultGraph() {
  const container = document.getElementById("result-graph");
  const data = readJson("result-graph-data");
  if (!container || !data || typeof cytoscape === "undefined") return;
  // Cytoscape injects an inline <style> unless an element with this id exists; the CSP refuses inline styles,
  // so console.css carries its one rule (.graph is position: relative) and this marker stops the injection.
  if (!document.getElementById(CYTOSCAPE_STYLESHEET)) {
    const marker = document.createElement("meta");
    marker.id = CYTOSCAPE_STYLESHEET;
    document.head.appendChild(marker);
  }
  const elements = [
    ...data.nodes.map((n) => ({ data: { id: n.id, label: n.label, kind: n.kind } })),
    ...data.edges.map((e) => ({ data: { id: e.id, source: e.source, target: e.target, label: e.label } })),
  ];
  container.cy = cytoscape({
    container, elements, wheelSensitivity: 0.2,
    layout: { name: "cose", animate: false },
    style: [
      { selector: "node", style: { label: "data(label)", "font-size": 10, "background-color": "#2563eb", color: "#111827",
                                   "text-valign": "bottom", "text-margin-y": 4 } },
      { selector: "edge", style: { label: "data(label)", "font-size": 8, width: 1.5, "line-color": "#9ca3af",
                                   "target-arrow-color": "#9ca3af", "target-arrow-shape": "triangle", "curve-style": "bezier" } },
    ],
  });
}

document.addEventListener("DOMContentLoaded", () => {
  featuresChart();
  runsChart();
  resultGraph();
});
