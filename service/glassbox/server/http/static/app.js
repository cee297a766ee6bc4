// Glassbox web page: plain JavaScript over the HTTP/JSON gateway (no build step, no dependencies).
"use strict";

const state = { model: null, info: null, image: null, imageUrl: null, predictions: [], job: null };
const $ = (id) => document.getElementById(id);
const camel = (name) => name.replace(/_([a-z])/g, (_, c) => c.toUpperCase());
const NOT_ON_PAGE = new Set(["neuron_gradient"]); // explains a neuron, not a class: needs a neuron spec
const DEFAULT_METHODS = ["saliency", "grad_cam"];

function headers() {
  const result = { "Content-Type": "application/json" };
  const token = $("token").value.trim();
  if (token) result.Authorization = `Bearer ${token}`;
  return result;
}

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: headers(),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = data.message || `${response.status} ${response.statusText}`;
    throw new Error(`${path}: ${message}`);
  }
  return data;
}

function showError(error) {
  const box = $("error");
  box.textContent = error ? String(error.message || error) : "";
  box.hidden = !error;
}

async function guarded(work) {
  showError(null);
  try {
    await work();
  } catch (error) {
    showError(error);
  }
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

const png = (base64) => `data:image/png;base64,${base64}`;

// ---- models ---------------------------------------------------------------------------------

async function loadModels() {
  const { models = [] } = await api("GET", "/v1/models");
  const select = $("model");
  select.replaceChildren(...models.map((m) => element("option", { value: m.name, text: m.name })));
  select.onchange = () => guarded(() => selectModel(select.value));
  if (models.length) await selectModel(models[0].name);
}

async function selectModel(name, version = "") {
  const query = version ? `?version=${encodeURIComponent(version)}` : "";
  const { model } = await api("GET", `/v1/models/${encodeURIComponent(name)}${query}`);
  state.model = name;
  state.info = model;
  if (!version) {
    const { models = [] } = await api("GET", "/v1/models");
    const versions = (models.find((m) => m.name === name) || { versions: [] }).versions || [];
    $("version").replaceChildren(
      ...versions.map((v) => element("option", { value: v.version, text: `${v.version} (${(v.state || "").replace("MODEL_STATE_", "").toLowerCase()})` })),
    );
    $("version").value = model.version;
    $("version").onchange = () => guarded(() => selectModel(name, $("version").value));
  }
  renderModelInfo(model);
  renderMethods(model);
  renderTargets();
  if (state.image) await predict();
}

function renderModelInfo(model) {
  const layers = (model.layers || []).filter((l) => l.camCompatible);
  const list = element("dl");
  const add = (term, value) => list.append(element("dt", { text: term }), element("dd", { text: value }));
  add("Description", model.description || "—");
  add("Backend", (model.backend || "").replace("BACKEND_", "").toLowerCase());
  add("Input size", `${model.inputHeight} × ${model.inputWidth}`);
  add("Labels", (model.labels || []).join(", "));
  add("CAM layers", layers.map((l) => `${l.name}${l.name === model.defaultCamLayer ? " (default)" : ""}`).join(", ") || "—");
  add("Image sets", (model.datasets || []).join(", ") || "—");
  $("model-info").replaceChildren(list);
}

function renderMethods(model) {
  const box = $("methods");
  const checked = new Set([...box.querySelectorAll("input:checked")].map((i) => i.value));
  const wanted = checked.size ? checked : new Set(DEFAULT_METHODS);
  const methods = (model.supportedMethods || []).filter((m) => !NOT_ON_PAGE.has(m));
  box.replaceChildren(element("legend", { text: "Methods" }));
  for (const method of methods) {
    const input = element("input", { type: "checkbox", name: "method", value: method, id: `method-${method}` });
    input.checked = wanted.has(method);
    box.append(element("label", { for: input.id }, input, ` ${method}`));
  }
}

function renderTargets() {
  const select = $("target");
  const labels = (state.info && state.info.labels) || [];
  const top = state.predictions.length ? state.predictions[0].index || 0 : null;
  const options = [element("option", { value: "", text: "the top prediction" })];
  labels.forEach((label, index) => options.push(element("option", { value: String(index), text: `${index}: ${label}` })));
  select.replaceChildren(...options);
  if (top !== null) select.setAttribute("aria-description", `top prediction: ${labels[top]}`);
}

// ---- images ---------------------------------------------------------------------------------

function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function useImage(dataUrl) {
  state.imageUrl = dataUrl;
  state.image = dataUrl.slice(dataUrl.indexOf(",") + 1);
  const preview = $("preview");
  preview.src = dataUrl;
  preview.hidden = false;
  await predict();
}

async function useFile(file) {
  if (!file) return;
  if (!file.type.startsWith("image/")) throw new Error(`${file.name} is not an image`);
  await useImage(await readFile(file));
}

async function loadSamples() {
  const samples = await fetch("/samples.json").then((r) => r.json());
  $("samples").replaceChildren(
    ...samples.map((sample) => {
      const button = element("button", { type: "button", "aria-label": `Sample image: ${sample.name}` },
        element("img", { src: sample.url, alt: "" }), element("span", { text: sample.name }));
      button.onclick = () => guarded(async () => {
        const blob = await fetch(sample.url).then((r) => r.blob());
        await useImage(await readFile(blob));
      });
      return button;
    }),
  );
}

async function predict() {
  const { predictions = [] } = await api("POST", `/v1/models/${encodeURIComponent(state.model)}:predict`, {
    version: state.info.version,
    images: [{ encoded: state.image }],
    topK: Math.min(5, (state.info.labels || []).length || 5),
  });
  state.predictions = (predictions[0] && predictions[0].classes) || [];
  const table = element("table", {},
    element("caption", { text: "Prediction (click a class to explain it)" }),
    element("tr", {}, element("th", { scope: "col", text: "class" }), element("th", { scope: "col", text: "probability" })));
  for (const item of state.predictions) {
    const button = element("button", { type: "button", class: "link", text: item.label });
    button.onclick = () => guarded(() => { $("target").value = String(item.index || 0); return explain(); });
    const bar = element("meter", { min: "0", max: "1", value: String(item.probability || 0) });
    table.append(element("tr", {}, element("td", {}, button),
      element("td", {}, bar, ` ${((item.probability || 0) * 100).toFixed(1)}%`)));
  }
  $("prediction").replaceChildren(table);
  renderTargets();
}

// ---- attribution ----------------------------------------------------------------------------

function selectedMethods() {
  return [...$("methods").querySelectorAll("input:checked")].map((input) => input.value);
}

async function explain() {
  if (!state.image) throw new Error("choose an image first");
  const methods = selectedMethods();
  if (!methods.length) throw new Error("pick at least one method");
  const target = $("target").value;
  const picture = document.querySelector("input[name=sign]:checked").value;
  const maps = $("maps");
  maps.replaceChildren(...methods.map((m) => element("figure", { class: "map", id: `map-${m}`, "aria-busy": "true" },
    element("figcaption", { text: `${m}: computing…` }))));
  await Promise.all(methods.map(async (method) => {
    const body = {
      version: state.info.version,
      images: [{ encoded: state.image }],
      targets: target === "" ? { topK: 1 } : { classIndices: [Number(target)] },
      output: { heatmapPng: true, overlayPng: true, colourBar: true, pictureAggregation: picture },
      [camel(method)]: {},
    };
    const figure = $(`map-${method}`);
    try {
      const response = await api("POST", `/v1/models/${encodeURIComponent(state.model)}:attribute`, body);
      renderMap(figure, method, response);
    } catch (error) {
      figure.replaceChildren(element("figcaption", { class: "error", text: `${method}: ${error.message}` }));
    }
    figure.setAttribute("aria-busy", "false");
  }));
}

function renderMap(figure, method, response) {
  // Left: the heatmap with its colour bar (scale, method, class). Right: the overlay (the map over a
  // darkened grey copy of the image) above the image itself; the slider fades between them. Both PNGs
  // carry the colour bar, which the overlay's frame crops (object-fit: cover from the top).
  const attribution = response.images[0].attributions[0];
  const label = attribution.target ? attribution.target.label : "";
  const heatmap = element("img", { src: png(attribution.heatmapPng), alt: `${method} heatmap for ${label}, with colour bar`, class: "rendered-map" });
  const stack = element("div", { class: "stack" },
    element("img", { src: state.imageUrl, alt: "", class: "under" }),
    element("img", { src: png(attribution.overlayPng), alt: `${method} overlay for ${label}`, class: "over rendered-map" }));
  stack.style.aspectRatio = `${state.info.inputWidth} / ${state.info.inputHeight}`;
  const stats = response.stats || {};
  const passes = `${stats.forwardPasses || 0} forward, ${stats.backwardPasses || 0} backward`;
  const cost = response.fromCache ? "from the cache" : `${(stats.computeSeconds || 0).toFixed(2)} s, ${passes}`;
  figure.replaceChildren(
    element("figcaption", { text: `${method} → ${label} (${cost})` }),
    element("div", { class: "pair" }, heatmap, stack));
  applyOpacity();
}

function applyOpacity() {
  const value = $("opacity").value;
  for (const image of document.querySelectorAll(".stack .over")) image.style.opacity = value;
}

// ---- jobs -----------------------------------------------------------------------------------

function jobSpec(kind) {
  const info = state.info;
  const named = (info.datasets || [])[0];
  if (kind === "feature_visualisation") {
    const layer = info.defaultCamLayer;
    return { featureVisualisation: { model: info.name, version: info.version, objective: { channel: { layer, channel: 0 } }, steps: 64 } };
  }
  if (!named) throw new Error(`${info.name} has no named image set for a ${kind} job`);
  const images = { named, limit: 16 };
  if (kind === "robustness_evaluation") {
    return { robustnessEvaluation: { model: info.name, version: info.version, images,
      attacks: [{ method: "ATTACK_METHOD_FGSM", epsilons: [1 / 255, 2 / 255, 4 / 255, 8 / 255] }] } };
  }
  return { explanationEvaluation: { model: info.name, version: info.version, images,
    methods: [{ saliency: {} }, { gradCam: {} }],
    metrics: ["EVALUATION_METRIC_DELETION", "EVALUATION_METRIC_POINTING_GAME"] } };
}

async function runJob() {
  const { job } = await api("POST", "/v1/jobs", jobSpec($("job-kind").value));
  state.job = job.id;
  $("cancel-job").disabled = false;
  $("job-result").replaceChildren();
  try {
    await watchJob(job.id);
  } finally {
    $("cancel-job").disabled = true;
  }
}

async function watchJob(id) {
  const response = await fetch(`/v1/jobs/${id}:watch?previewEverySteps=8`, { headers: { ...headers(), Accept: "text/event-stream" } });
  if (!response.ok) {
    const data = await response.json().catch(() => ({}));
    throw new Error(data.message || response.statusText);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block);
      const data = /^data: (.*)$/m.exec(block);
      if (!data) continue;
      const payload = JSON.parse(data[1]);
      if (event && event[1] === "error") throw new Error(payload.message);
      renderJob(payload);
    }
  }
}

function renderJob(update) {
  const job = update.job;
  const progress = job.progress || {};
  const total = progress.totalSteps || 0;
  $("job-progress").max = total || 1;
  $("job-progress").value = progress.step || 0;
  const stateName = (job.state || "").replace("JOB_STATE_", "").toLowerCase();
  $("job-status").textContent = `${job.kind}: ${stateName}${total ? ` (step ${progress.step || 0} of ${total})` : ""}`;
  if (update.previewPng) {
    $("job-result").replaceChildren(element("img", { src: png(update.previewPng), alt: "job preview", class: "preview" }));
  }
  if (job.error && job.error.message) $("job-status").textContent += `: ${job.error.message}`;
  const pictures = resultPictures(job);
  if (pictures.length) {
    $("job-result").replaceChildren(...pictures.map(([alt, data]) => element("img", { src: png(data), alt, class: "result-picture" })));
  }
}

function resultPictures(job) {
  if (job.featureVisualisation) return (job.featureVisualisation.images || []).map((im, i) => [`feature visualisation ${i}`, im.png]);
  if (job.classVisualisation) return [["class visualisation", job.classVisualisation.image.png]];
  if (job.robustnessEvaluation && job.robustnessEvaluation.plotPng) return [["robustness plot", job.robustnessEvaluation.plotPng]];
  if (job.explanationEvaluation && job.explanationEvaluation.reportPng) return [["evaluation report", job.explanationEvaluation.reportPng]];
  return [];
}

// ---- robustness history ---------------------------------------------------------------------

async function loadHistory() {
  const { records = [] } = await api("GET", `/v1/models/${encodeURIComponent(state.model)}/robustness-history?limit=50`);
  const box = $("history");
  if (!records.length) {
    box.replaceChildren(element("p", { text: `No robustness evaluations recorded for ${state.model} yet.` }));
    return;
  }
  box.replaceChildren(historyPlot(records.slice().reverse()));
}

function historyPlot(records) {
  const width = 640, height = 260, left = 44, right = 170, top = 14, bottom = 34;
  const series = new Map([["clean", records.map((r) => r.cleanAccuracy || 0)]]);
  records.forEach((record, index) => {
    for (const attack of record.attacks || []) {
      const key = `${attack.attack} ε=${(attack.epsilon * 255).toFixed(1)}/255`;
      if (!series.has(key)) series.set(key, new Array(records.length).fill(null));
      series.get(key)[index] = attack.robustAccuracy || 0;
    }
  });
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `Accuracy of ${state.model} over ${records.length} evaluations`);
  const add = (tag, attributes, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  const plotWidth = width - left - right, plotHeight = height - top - bottom;
  const x = (i) => left + (records.length === 1 ? plotWidth / 2 : (i * plotWidth) / (records.length - 1));
  const y = (v) => top + (1 - v) * plotHeight;
  for (const tick of [0, 0.25, 0.5, 0.75, 1]) {
    add("line", { x1: left, x2: left + plotWidth, y1: y(tick), y2: y(tick), class: "grid" });
    add("text", { x: left - 6, y: y(tick) + 4, "text-anchor": "end" }, `${tick * 100}%`);
  }
  records.forEach((record, i) => add("text", { x: x(i), y: height - 12, "text-anchor": "middle" }, `v${record.version}`));
  const colours = ["#1b1b1b", "#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9"];
  [...series.entries()].forEach(([name, values], s) => {
    const colour = colours[s % colours.length];
    const points = values.map((v, i) => (v === null ? null : `${x(i)},${y(v)}`)).filter(Boolean);
    add("polyline", { points: points.join(" "), fill: "none", stroke: colour, "stroke-width": 2 });
    values.forEach((v, i) => {
      if (v === null) return;
      const dot = add("circle", { cx: x(i), cy: y(v), r: 3, fill: colour });
      const title = document.createElementNS(ns, "title");
      title.textContent = `${name}, version ${records[i].version}, ${records[i].time || ""}: ${(v * 100).toFixed(1)}%`;
      dot.append(title);
    });
    add("rect", { x: width - right + 10, y: top + s * 18, width: 12, height: 3, fill: colour });
    add("text", { x: width - right + 28, y: top + s * 18 + 5 }, name);
  });
  return svg;
}

// ---- wiring ---------------------------------------------------------------------------------

function wire() {
  const drop = $("drop");
  drop.onclick = () => $("file").click();
  drop.onkeydown = (event) => { if (event.key === "Enter" || event.key === " ") { event.preventDefault(); $("file").click(); } };
  drop.ondragover = (event) => { event.preventDefault(); drop.classList.add("over"); };
  drop.ondragleave = () => drop.classList.remove("over");
  drop.ondrop = (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    guarded(() => useFile(event.dataTransfer.files[0]));
  };
  $("file").onchange = (event) => guarded(() => useFile(event.target.files[0]));
  $("explain").onclick = () => guarded(explain);
  $("target").onchange = () => { if (state.image && $("maps").children.length) guarded(explain); };
  for (const radio of document.querySelectorAll("input[name=sign]")) {
    radio.onchange = () => { if (state.image && $("maps").children.length) guarded(explain); };
  }
  $("opacity").oninput = applyOpacity;
  $("run-job").onclick = () => guarded(runJob);
  $("cancel-job").onclick = () => guarded(() => api("POST", `/v1/jobs/${state.job}:cancel`, {}));
  $("load-history").onclick = () => guarded(loadHistory);
  $("token").onchange = () => guarded(loadModels);
}

document.addEventListener("DOMContentLoaded", () => {
  wire();
  guarded(async () => {
    await Promise.all([loadModels(), loadSamples()]);
    document.body.dataset.ready = "true";
  });
});
