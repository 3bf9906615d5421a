// What every console page script shares: reading a page's <script type="application/json"> data blocks (no
// page runs inline script: the Content-Security-Policy forbids it) and the chart colours. Loaded before them.
"use strict";

function readJson(id) {
  const block = document.getElementById(id);
  return block ? JSON.parse(block.textContent) : null;
}

// The first colour marks "all agents" on the success chart; series of their own take the others in turn.
const PALETTE = ["#111827", "#2563eb", "#16a34a", "#dc2626", "#7c3aed", "#ea580c", "#0891b2", "#db2777", "#65a30d"];

function seriesColour(index) {
  return PALETTE[1 + (index % (PALETTE.length - 1))];
}
