// The entity page: the neighbourhood graph (Cytoscape.js), the as-of slider and the observations' validity bars.
// No inline script or style under the CSP: data comes from data-* attributes and the /graph JSON route, and
// the bars are placed through the CSSOM. Labels are Cytoscape text on a canvas, so names never become HTML.
"use strict";

const KIND_COLOURS = {
  Project: "#2563eb", Agent: "#16a34a", Delegation: "#7c3aed", Lesson: "#ea580c", Incident: "#dc2626",
  Model: "#0891b2", ModelVersion: "#0e7490", Dataset: "#65a30d", Feature: "#a16207", Experiment: "#db2777",
};
const LIMIT_STEP = 30;

function graphUrl(base, params) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== "" && value != null) query.set(key, value);
  return `${base}?${query}`;
}

function neighbourhoodGraph() {
  const box = document.getElementById("graph");
  if (!box || typeof cytoscape === "undefined") return;
  const status = document.getElementById("graph-status");
  const controls = document.getElementById("graph-controls");
  const entityBase = box.dataset.entityBase;
  const state = { limit: LIMIT_STEP };
  const cy = cytoscape({
    container: box,
    style: [
      { selector: "node", style: { label: "data(name)", "background-color": "data(colour)", "font-size": 10,
                                   "text-valign": "bottom", "text-wrap": "ellipsis", "text-max-width": 120 } },
      { selector: "node.center", style: { "border-width": 3, "border-color": "#111827" } },
      { selector: "edge", style: { label: "data(type)", "font-size": 8, width: 1.5, "curve-style": "bezier",
                                   "target-arrow-shape": "triangle", "line-color": "#9ca3af",
                                   "target-arrow-color": "#9ca3af", color: "#4b5563" } },
    ],
  });
  window.cy = cy;  // the browser tests count nodes from the library's own model

  function publish() {
    box.dataset.nodeCount = String(cy.nodes().length);
    box.dataset.edgeCount = String(cy.edges().length);
  }

  function add(data) {
    const elements = [];
    for (const node of data.nodes) {
      if (cy.getElementById(node.id).nonempty()) continue;
      elements.push({ group: "nodes", data: { id: node.id, name: node.name, kind: node.kind,
                                              colour: KIND_COLOURS[node.kind] || "#6b7280" } });
    }
    for (const edge of data.edges) {
      if (cy.getElementById(edge.id).nonempty()) continue;
      elements.push({ group: "edges", data: { id: edge.id, source: edge.source, target: edge.target, type: edge.type } });
    }
    cy.add(elements);
    return elements.filter((e) => e.group === "nodes").length;
  }

  function params(extra) {
    return { depth: controls.elements.depth.value, types: controls.elements.types.value,
             kinds: controls.elements.kinds.value, as_of: box.dataset.asOf || "", ...extra };
  }

  async function fetchGraph(url) {
    box.dataset.loading = "true";
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      if (!response.ok) throw new Error(`the graph could not be loaded (HTTP ${response.status})`);
      return await response.json();
    } finally {
      delete box.dataset.loading;
    }
  }

  function layout() {
    cy.layout({ name: "cose", animate: false, fit: true, padding: 20 }).run();
  }

  async function load() {
    try {
      const data = await fetchGraph(graphUrl(box.dataset.url, params({ limit: state.limit })));
      cy.elements().remove();
      add(data);
      cy.getElementById(data.center).addClass("center");
      layout();
      document.getElementById("g-more").disabled = !data.more;
      status.textContent = `${cy.nodes().length} entities, ${cy.edges().length} relations` +
        (data.more ? ` (the ${data.limit} nearest; "More" shows others)` : "") + ". Click a node to expand it.";
    } catch (error) {
      status.textContent = error.message;
    }
    publish();
  }

  cy.on("tap", "node", async (event) => {
    const node = event.target;
    try {
      const data = await fetchGraph(graphUrl(entityBase + encodeURIComponent(node.id()) + "/graph",
                                             params({ depth: 1, limit: LIMIT_STEP })));
      const added = add(data);
      layout();
      status.textContent = `Expanded ${node.data("name")}: ${added} more entities.`;
    } catch (error) {
      status.textContent = error.message;
    }
    publish();
  });
  cy.on("dbltap", "node", (event) => { window.location.href = entityBase + encodeURIComponent(event.target.id()); });

  controls.addEventListener("change", () => { state.limit = LIMIT_STEP; load(); });
  document.getElementById("g-more").addEventListener("click", () => { state.limit += LIMIT_STEP; load(); });
  document.getElementById("g-fit").addEventListener("click", () => cy.fit(undefined, 20));
  load();
}

function asOfSlider() {
  const slider = document.getElementById("as-of-slider");
  if (!slider) return;
  const label = document.getElementById("as-of-label");
  const value = document.getElementById("as-of-value");
  const show = () => {
    const at = new Date(Number(slider.value) * 1000);
    label.textContent = at.toISOString().slice(0, 16).replace("T", " ");
    value.value = at.toISOString();
  };
  slider.addEventListener("input", show);
  slider.addEventListener("change", () => { show(); slider.form.requestSubmit(); });
}

function validityBars() {
  for (const bar of document.querySelectorAll(".interval .bar")) {
    bar.style.marginLeft = `${bar.dataset.left}%`;
    bar.style.width = `${bar.dataset.width}%`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  validityBars();
  asOfSlider();
  neighbourhoodGraph();
});
