// The page of `trainer serve`: drawing, runs and mistakes, over the JSON API.
// Plain JavaScript, no framework and nothing fetched from elsewhere.
// Everything the server sends enters the page as text (textContent,
// attributes set one by one), never as HTML: a run's files are data, and a
// hostile one must not run script (the Content-Security-Policy forbids inline
// script as a second line).
"use strict";

const $ = (id) => document.getElementById(id);

// An element with attributes and children (strings become text nodes).
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

const svgNs = "http://www.w3.org/2000/svg";
function svgEl(tag, attributes = {}, text = null) {
  const node = document.createElementNS(svgNs, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== null) node.textContent = text;
  return node;
}
const state = { run: null, selectedRun: null, pollTimer: null, classNames: null };

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function modelQuery() {
  return state.run ? `?run=${encodeURIComponent(state.run)}` : "";
}

// ---- Tabs -------------------------------------------------------------------
function show(view) {
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.view === view);
  for (const section of document.querySelectorAll(".view")) section.classList.toggle("hidden", section.id !== `view-${view}`);
  if (view === "runs") refreshRuns();
  if (view === "mistakes") loadMistakes();
}
for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => show(tab.dataset.view));

// ---- Drawing ----------------------------------------------------------------
const pad = $("pad");
const pen = pad.getContext("2d");
let drawing = false, last = null, dirty = false, inFlight = false, lastSent = 0;

// Bumped by Clear: answers to requests sent before it are dropped, not shown.
let drawingGeneration = 0;
// Answers can arrive out of order: only one newer than the last shown is shown.
let requestsSent = 0, newestShown = 0;

function clearPad() {
  drawingGeneration += 1;
  pen.fillStyle = "#fff";
  pen.fillRect(0, 0, pad.width, pad.height);
  dirty = false;
  $("predicted").textContent = "–";
  $("top3").replaceChildren();
  $("draw-status").textContent = "";
  $("seen").getContext("2d").clearRect(0, 0, 112, 112);
}

function point(event) {
  const box = pad.getBoundingClientRect();
  return { x: (event.clientX - box.left) * (pad.width / box.width), y: (event.clientY - box.top) * (pad.height / box.height) };
}

function stroke(from, to) {
  pen.strokeStyle = "#000";
  pen.lineWidth = 22;
  pen.lineCap = "round";
  pen.lineJoin = "round";
  pen.beginPath();
  pen.moveTo(from.x, from.y);
  pen.lineTo(to.x, to.y);
  pen.stroke();
  dirty = true;
}

pad.addEventListener("pointerdown", (event) => {
  drawing = true;
  last = point(event);
  stroke(last, last);
  // Keep receiving moves outside the pad; a synthetic pointer cannot be captured, which is harmless.
  try { pad.setPointerCapture(event.pointerId); } catch (_) { /* not capturable */ }
  event.preventDefault();
});
pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const next = point(event);
  stroke(last, next);
  last = next;
  throttledPredict();
});
for (const name of ["pointerup", "pointercancel"]) {
  pad.addEventListener(name, () => {
    if (!drawing) return;
    drawing = false;
    predictDrawing();
  });
}

// At most one request in flight and one every 150 ms while drawing.
function throttledPredict() {
  const now = performance.now();
  if (!inFlight && now - lastSent > 150) predictDrawing();
}

function predictDrawing() {
  if (!dirty) return;
  // Numbered now, not when the PNG is ready: encodings may finish out of order.
  const sequence = ++requestsSent, generation = drawingGeneration;
  pad.toBlob((blob) => predictBody(blob, "image/png", sequence, generation), "image/png");
}

async function predictBody(body, type, sequence = ++requestsSent, generation = drawingGeneration) {
  inFlight = true;
  lastSent = performance.now();
  try {
    const answer = await api(`/api/predict${modelQuery()}`, { method: "POST", headers: { "Content-Type": type }, body });
    if (generation === drawingGeneration && sequence > newestShown) {
      newestShown = sequence;
      showPrediction(answer);
    }
  } catch (error) {
    if (generation === drawingGeneration) $("draw-status").textContent = error.message;
  } finally {
    inFlight = false;
  }
}

function bars(list, predictions) {
  list.replaceChildren();
  for (const { name, probability } of predictions) {
    const percent = (Number(probability) * 100).toFixed(1);
    const fill = el("span");
    fill.style.width = `${percent}%`;
    list.appendChild(el("li", {}, el("span", { class: "label" }, String(name)), el("span", { class: "bar" }, fill), `${percent}%`));
  }
}

function paint(canvas, pixels, scale) {
  const size = 28;
  const context = canvas.getContext("2d");
  const image = context.createImageData(size, size);
  for (let index = 0; index < size * size; index++) {
    const value = scale === 1 ? Math.round(pixels[index] * 255) : pixels[index];
    image.data.set([value, value, value, 255], index * 4);
  }
  const small = document.createElement("canvas");
  small.width = small.height = size;
  small.getContext("2d").putImageData(image, 0, 0);
  context.imageSmoothingEnabled = false;
  context.drawImage(small, 0, 0, canvas.width, canvas.height);
}

function showPrediction(answer) {
  const top = answer.predictions[0];
  $("predicted").textContent = top.name;
  bars($("top3"), answer.predictions.slice(0, 3));
  paint($("seen"), answer.input, 1);
  $("draw-status").textContent = `model: ${answer.model}`;
}

// The API decodes only image/* bodies; a file the browser could not type is
// sent as one all the same, and the server recognises the format from its bytes.
const imageType = (file) => (file.type.startsWith("image/") ? file.type : "image/x-unknown");

$("clear").addEventListener("click", clearPad);
$("file").addEventListener("change", () => {
  const file = $("file").files[0];
  if (file) predictBody(file, imageType(file));
});
pad.addEventListener("dragover", (event) => { event.preventDefault(); pad.classList.add("drop"); });
pad.addEventListener("dragleave", () => pad.classList.remove("drop"));
pad.addEventListener("drop", (event) => {
  event.preventDefault();
  pad.classList.remove("drop");
  const file = event.dataTransfer.files[0];
  if (file) predictBody(file, imageType(file));
});

// ---- Model choice -----------------------------------------------------------
async function refreshModels() {
  const select = $("model-select");
  const [{ runs }, current] = await Promise.all([api("/api/runs"), api("/api/model").catch(() => null)]);
  const chosen = select.value;
  select.replaceChildren();
  const fallback = document.createElement("option");
  fallback.value = "";
  fallback.textContent = current ? `default (${current.name})` : "default (none yet)";
  select.appendChild(fallback);
  for (const run of runs.filter((run) => run.has_checkpoint)) {
    const option = document.createElement("option");
    option.value = run.name;
    option.textContent = run.name;
    select.appendChild(option);
  }
  select.value = [...select.options].some((option) => option.value === chosen) ? chosen : "";
}
$("model-select").addEventListener("change", () => {
  state.run = $("model-select").value || null;
  predictDrawing();
});

// ---- Runs -------------------------------------------------------------------
function percent(value) {
  return typeof value === "number" ? value.toFixed(4) : "–";
}

async function refreshRuns() {
  let listing;
  try {
    listing = await api("/api/runs");
  } catch (error) {
    $("run-detail").textContent = error.message;
    return;
  }
  const runs = listing.runs;
  const list = $("run-list");
  list.replaceChildren();
  if (runs.length === 0) list.appendChild(el("li", {}, "No runs yet: train one with ", el("code", {}, "trainer --save-dir RUNS/NAME"), "."));
  for (const run of runs.filter((run) => !run.sweep)) list.appendChild(runCard(run, String(run.name)));
  $("sweep-list").replaceChildren(...(listing.sweeps || []).map((sweep) => sweepSection(sweep, runs)));
  if (!state.selectedRun && runs.length > 0) selectRun(runs[0].name);
  else if (state.selectedRun) renderRun(runs.find((run) => run.name === state.selectedRun));
}

// A run's card: its name, where it stands, and its progress; a click opens it.
function runCard(run, shownName) {
  const total = Number(run.epochs_total) || Number(run.epochs_done) || 1;
  const status = run.finished ? `test ${percent(run.test_accuracy)}` : `epoch ${run.epochs_done}/${run.epochs_total ?? "?"}, ${run.state}`;
  const fill = el("span");
  fill.style.width = `${Math.min(100, (100 * Number(run.epochs_done)) / total)}%`;
  const item = el("li", {}, el("div", { class: "name" }, shownName), el("div", {}, status), el("div", { class: "progress" }, fill));
  item.dataset.run = run.name;
  item.classList.toggle("selected", run.name === state.selectedRun);
  item.addEventListener("click", () => {
    selectRun(run.name);
    if (run.sweep) $("run-detail").scrollIntoView({ block: "nearest" });
  });
  return item;
}

// A group's label as `key=value` pairs, as `trainer runs` prints it.
function groupLabel(group) {
  const pairs = Object.entries(group.label || {}).map(([key, value]) => `${key}=${typeof value === "string" ? value : JSON.stringify(value)}`);
  return pairs.length ? pairs.join(" ") : "all runs";
}

// A sweep: the spread of the test accuracy per recipe, then its runs as cards.
function sweepSection(sweep, runs) {
  const columns = ["recipe", "finished", "mean", "std", "min", "max"];
  const table = el("table", { class: "settings groups" }, el("tr", {}, ...columns.map((name) => el("th", {}, name))));
  for (const group of sweep.groups) {
    const test = group.test_accuracy || {};
    const cells = [groupLabel(group), `${group.n_finished}/${group.runs.length}`, percent(test.mean), percent(test.std), percent(test.min), percent(test.max)];
    table.appendChild(el("tr", {}, ...cells.map((cell) => el("td", {}, String(cell)))));
  }
  const members = el("ul", { class: "run-list" });
  for (const summary of sweep.runs) {
    const run = runs.find((candidate) => candidate.name === summary.name);
    if (run) members.appendChild(runCard(run, String(run.name).slice(String(sweep.name).length + 1)));
  }
  const problems = (sweep.problems || []).map((problem) => el("p", { class: "status problem" }, String(problem)));
  const section = el("section", { class: "sweep" }, el("h2", {}, `Sweep ${sweep.name}`), table, ...problems, members);
  section.dataset.sweep = sweep.name;
  return section;
}

function selectRun(name) {
  state.selectedRun = name;
  for (const item of document.querySelectorAll(".run-list li")) item.classList.toggle("selected", item.dataset.run === name);
  clearInterval(state.pollTimer);
  updateRun();
  // Records arrive while a run trains: poll them (a half-written line is skipped by the server).
  state.pollTimer = setInterval(updateRun, 2000);
}

let lastRuns = [];
async function updateRun() {
  if (!state.selectedRun) return;
  try {
    const [{ runs }, metrics] = await Promise.all([api("/api/runs"), api(`/api/runs/${encodeURIComponent(state.selectedRun)}/metrics`)]);
    lastRuns = runs;
    renderRun(runs.find((run) => run.name === state.selectedRun), metrics.records);
  } catch (error) {
    $("run-detail").textContent = error.message;
  }
}

function renderRun(run, records) {
  if (!run) return;
  const detail = $("run-detail");
  if (!records) return;
  const settings = el("table", { class: "settings" });
  for (const [key, value] of Object.entries(run.settings || {})) {
    settings.appendChild(el("tr", {}, el("th", {}, key), el("td", {}, JSON.stringify(value))));
  }
  const bestEpoch = typeof run.best_epoch === "number" ? run.best_epoch + 1 : "–";
  const summary = `${run.epochs_done} epochs recorded${run.epochs_total ? ` of ${run.epochs_total}` : ""}; ` +
    `best epoch ${bestEpoch} (validation ${percent(run.best_validation_accuracy)}); ` +
    (run.finished ? `test accuracy ${percent(run.test_accuracy)}` : String(run.state || "not finished"));
  const charts = el("div", { class: "charts", id: "charts" });
  const problems = (run.problems || []).map((problem) => el("p", { class: "status problem" }, String(problem)));
  detail.replaceChildren(el("h2", {}, String(run.name)), el("p", { id: "run-summary" }, summary), ...problems, charts, settings);
  const epochs = records.epochs;
  charts.appendChild(chart("loss", [
    { name: "training", color: "#1f77b4", points: epochs.map((r) => [r.epoch + 1, r.loss]) },
    { name: "validation", color: "#ff7f0e", points: epochs.filter((r) => r.validation_loss != null).map((r) => [r.epoch + 1, r.validation_loss]) },
  ], run.best_epoch));
  charts.appendChild(chart("accuracy", [
    { name: "training", color: "#1f77b4", points: epochs.map((r) => [r.epoch + 1, r.train_accuracy]) },
    { name: "validation", color: "#ff7f0e", points: epochs.map((r) => [r.epoch + 1, r.validation_accuracy]) },
  ], run.best_epoch));
}

// A line chart as SVG: series of [x, y] points, the best epoch dashed. Built
// element by element: the numbers come from run files, so nothing is parsed as markup.
function chart(title, series, bestEpoch) {
  const width = 520, height = 300, left = 56, right = 12, top = 28, bottom = 36;
  const all = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const xs = all.map(([x]) => x), ys = all.map(([, y]) => y);
  const xMax = Math.max(2, ...xs), yMin = Math.min(...ys), yMax = Math.max(...ys);
  const pad = Math.max((yMax - yMin) * 0.08, 1e-3);
  const y0 = yMin - pad, y1 = yMax + pad;
  const px = (x) => left + ((x - 1) / Math.max(xMax - 1, 1)) * (width - left - right);
  const py = (y) => top + (1 - (y - y0) / (y1 - y0 || 1)) * (height - top - bottom);
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart" });
  svg.dataset.chart = title;
  svg.appendChild(svgEl("text", { x: width / 2, y: 18, "text-anchor": "middle", "font-size": 15 }, title));
  for (let tick = 0; tick <= 4; tick++) {
    const value = y0 + ((y1 - y0) * tick) / 4;
    svg.appendChild(svgEl("line", { x1: left, x2: width - right, y1: py(value), y2: py(value), stroke: "#eee" }));
    svg.appendChild(svgEl("text", { x: left - 6, y: py(value) + 4, "text-anchor": "end", "font-size": 11 }, value.toFixed(title === "loss" ? 3 : 4)));
  }
  svg.appendChild(svgEl("text", { x: (left + width - right) / 2, y: height - 6, "text-anchor": "middle", "font-size": 12 }, `epoch (1 to ${xMax})`));
  if (typeof bestEpoch === "number") {
    const x = px(bestEpoch + 1);
    svg.appendChild(svgEl("line", { class: "best", x1: x, x2: x, y1: top, y2: height - bottom, stroke: "#2ca02c", "stroke-dasharray": "5,4" }));
  }
  series.forEach((s, index) => {
    const points = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (points.length === 0) return;
    const path = points.map(([x, y], i) => `${i ? "L" : "M"}${px(x).toFixed(1)},${py(y).toFixed(1)}`).join("");
    const line = svgEl("path", { class: "series", d: path, fill: "none", stroke: s.color, "stroke-width": 2 });
    line.dataset.series = s.name;
    svg.appendChild(line);
    for (const [x, y] of points) svg.appendChild(svgEl("circle", { cx: px(x), cy: py(y), r: 2.5, fill: s.color }));
    svg.appendChild(svgEl("text", { x: width - right - 90, y: top + 16 + 16 * index, "font-size": 12, fill: s.color }, s.name));
  });
  return svg;
}

// ---- Mistakes ---------------------------------------------------------------
async function loadMistakes() {
  const name = state.run || state.selectedRun || (lastRuns.find((run) => run.has_checkpoint) || {}).name;
  const status = $("mistakes-status");
  if (!name) {
    const { runs } = await api("/api/runs");
    lastRuns = runs;
    if (!runs.some((run) => run.has_checkpoint)) {
      status.textContent = "No run has a best checkpoint yet.";
      return;
    }
    return loadMistakes();
  }
  status.textContent = `Evaluating the test set with ${name}'s best checkpoint…`;
  $("mistake-grid").replaceChildren();
  $("mistake-detail").replaceChildren();
  try {
    const { test } = await api(`/api/runs/${encodeURIComponent(name)}/mistakes`);
    state.classNames = test.class_names;
    status.textContent = `${name}: ${test.n_mistakes} of ${test.n_images} test images misclassified` +
      (test.mistakes.length < test.n_mistakes ? `; the ${test.mistakes.length} worst:` : ":");
    for (const mistake of test.mistakes) {
      const cell = document.createElement("div");
      cell.className = "mistake";
      const canvas = document.createElement("canvas");
      canvas.width = canvas.height = 56;
      paint(canvas, mistake.pixels, 255);
      cell.appendChild(canvas);
      const caption = document.createElement("div");
      caption.textContent = `${test.class_names[mistake.true_class]}→${test.class_names[mistake.predicted_class]}`;
      cell.appendChild(caption);
      cell.addEventListener("click", () => showMistake(cell, mistake, test.class_names));
      $("mistake-grid").appendChild(cell);
    }
  } catch (error) {
    status.textContent = error.message;
  }
}

function showMistake(cell, mistake, classNames) {
  for (const other of document.querySelectorAll(".mistake")) other.classList.toggle("selected", other === cell);
  const canvas = el("canvas", { width: 112, height: 112 });
  $("mistake-detail").replaceChildren(canvas, el("div", {}, el("div", { id: "mistake-title" }), el("ol", { class: "bars", id: "mistake-bars" })));
  paint(canvas, mistake.pixels, 255);
  $("mistake-title").textContent =
    `test image ${mistake.index}: true ${classNames[mistake.true_class]}, predicted ${classNames[mistake.predicted_class]}`;
  const ranked = mistake.probabilities.map((probability, index) => ({ name: classNames[index], probability }))
    .sort((a, b) => b.probability - a.probability);
  bars($("mistake-bars"), ranked);
}

clearPad();
refreshModels().catch((error) => { $("draw-status").textContent = error.message; });
