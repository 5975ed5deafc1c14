// The console's live parts, on the browser's own EventSource: no build step, nothing fetched from elsewhere.
// Every page reads without this script; it adds the countdowns, the counts and the live rows.
"use strict";

function element(html) {
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  return template.content.firstElementChild;
}

function remaining(ms) {
  const s = Math.floor(ms / 1000);
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
  if (d) return d + " d " + h + " h";
  if (h) return h + " h " + m + " min";
  if (m) return m + " min " + (s % 60) + " s";
  return (s % 60) + " s";
}

function tick() {
  const now = Date.now();
  for (const node of document.querySelectorAll("time.countdown")) {
    if (!node.dataset.stamp) { node.dataset.stamp = node.textContent; node.title = node.textContent; }
    const left = Date.parse(node.getAttribute("datetime")) - now;
    if (left > 0) {
      node.textContent = "in " + remaining(left);
      node.classList.remove("reached");
    } else {
      node.textContent = "deadline reached (" + node.dataset.stamp + ")";
      node.classList.add("reached");
    }
  }
}

function loadCounts() {
  const box = document.getElementById("counts");
  if (!box) return;
  fetch(box.dataset.src, {credentials: "same-origin"}).then((r) => r.ok ? r.text() : Promise.reject(r.status))
    .then((html) => { box.innerHTML = html; })
    .catch(() => { box.textContent = "The counts could not be read."; });
}

let countsTimer = null;
function countsSoon() {
  if (countsTimer) return;
  countsTimer = setTimeout(() => { countsTimer = null; loadCounts(); }, 1500);
}

function liveSessions() {
  const table = document.getElementById("sessions");
  if (!table || !table.dataset.live || !window.EventSource) return;
  const body = table.tBodies[0], note = document.getElementById("live-note");
  const source = new EventSource(table.dataset.live);
  source.addEventListener("session", (message) => {
    const data = JSON.parse(message.data), row = element(data.html), old = document.getElementById(row.id);
    if (old) { old.replaceWith(row); }
    else if (data.created && table.dataset.first && table.dataset.order === "newest") { body.prepend(row); }
    else if (data.created && table.dataset.last && table.dataset.order === "oldest") { body.append(row); }
    else { return; }
    row.classList.add("fresh");
    if (note) note.textContent = (old ? "Session " : "New session ") + data.id.slice(0, 8) + (old ? " changed." : " appeared.");
    tick();
  });
  source.addEventListener("drop", (message) => {
    const old = document.getElementById("row-" + JSON.parse(message.data).id);
    if (old) old.remove();
  });
  source.addEventListener("changed", countsSoon);
}

function liveFeed() {
  const table = document.getElementById("feed");
  if (!table || !window.EventSource) return;
  const body = table.tBodies[0];
  const source = new EventSource(table.dataset.live);
  source.addEventListener("row", (message) => {
    const row = element(JSON.parse(message.data).html);
    if (document.getElementById(row.id)) return;
    row.classList.add("fresh");
    body.prepend(row);
    while (body.rows.length > 200) body.lastElementChild.remove();
  });
}

function liveLifecycles() {
  for (const table of document.querySelectorAll("table.counts-table[data-live]")) {
    if (!window.EventSource) return;
    const source = new EventSource(table.dataset.live);
    source.addEventListener("counts", (message) => {
      const counts = JSON.parse(message.data).counts;
      for (const cell of table.querySelectorAll("td[data-state]")) {
        cell.textContent = String(counts[cell.dataset.state] || 0);
      }
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  tick();
  setInterval(tick, 1000);
  loadCounts();
  liveSessions();
  liveFeed();
  liveLifecycles();
});
