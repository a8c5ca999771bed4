// lanai's console: status, try it, models and security pages over the box's own HTTP API.
// No framework and no build step. Every value from the server is put into the page as text (textContent),
// never as HTML. The API key lives in this tab's sessionStorage only.
"use strict";

const KEY_ITEM = "lanai.key";
const lanaiKey = () => sessionStorage.getItem(KEY_ITEM);
window.lanaiKey = lanaiKey;

// -- small helpers ---------------------------------------------------------------------------------------

/** An element: h("td", {class: "num"}, "12", child, …); attributes starting with "on" are listeners. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(el.dataset, value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const $ = (selector) => document.querySelector(selector);
const main = () => $("#main");

function fill(target, ...children) {
  target.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return target;
}

const fmt = {
  ms: (v) => (v === null || v === undefined ? "–" : v < 10 ? v.toFixed(1) : Math.round(v).toString()),
  num: (v, digits = 1) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits)),
  mb: (v) => (v === null || v === undefined ? "–" : v >= 1024 ? (v / 1024).toFixed(1) + " GB" : Math.round(v) + " MB"),
  bytes: (v) => (v >= 1 << 20 ? (v / (1 << 20)).toFixed(1) + " MB" : v >= 1024 ? (v / 1024).toFixed(0) + " KB" : v + " B"),
  uptime: (s) => {
    const d = Math.floor(s / 86400), hh = Math.floor((s % 86400) / 3600), mm = Math.floor((s % 3600) / 60);
    return d ? `${d} d ${hh} h` : hh ? `${hh} h ${mm} min` : mm ? `${mm} min` : `${Math.round(s)} s`;
  },
  when: (iso) => (iso ? new Date(typeof iso === "number" ? iso * 1000 : iso).toLocaleString() : "–"),
  time: (unix) => new Date(unix * 1000).toLocaleTimeString(),
};

/** A sparkline of numbers (nulls leave gaps) as an SVG. */
function spark(values, width = 150, height = 30) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("width", width);
  svg.setAttribute("height", height);
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("aria-hidden", "true");
  const seen = (values || []).filter((v) => typeof v === "number");
  if (seen.length < 2) return svg;
  const lo = Math.min(0, ...seen), hi = Math.max(...seen) || 1;
  const step = width / Math.max(1, values.length - 1);
  let run = [];
  const flush = () => {
    if (run.length > 1) {
      const line = document.createElementNS(ns, "polyline");
      line.setAttribute("points", run.join(" "));
      svg.append(line);
    }
    run = [];
  };
  values.forEach((v, i) => {
    if (typeof v !== "number") return flush();
    run.push(`${(i * step).toFixed(1)},${(height - 2 - ((v - lo) / (hi - lo || 1)) * (height - 4)).toFixed(1)}`);
  });
  flush();
  return svg;
}

// -- the API ---------------------------------------------------------------------------------------------

/** Call the API: {status, ok, data, text, response}. data is the parsed JSON when the answer is JSON. */
async function api(method, path, { json, body, headers = {}, raw = false } = {}) {
  const sent = { method, headers: { ...headers } };
  const key = lanaiKey();
  if (key) sent.headers.Authorization = "Bearer " + key;
  if (json !== undefined) {
    sent.headers["Content-Type"] = "application/json";
    sent.body = JSON.stringify(json);
  } else if (body !== undefined) {
    sent.body = body;
  }
  let response;
  try {
    response = await fetch(path, sent);
  } catch (err) {
    return { status: 0, ok: false, data: null, text: `the box did not answer (${err.message})` };
  }
  if (raw) return { status: response.status, ok: response.ok, response };
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch (err) {
    data = null;
  }
  return { status: response.status, ok: response.ok, data, text };
}

/** What went wrong with an answer, in the server's own words where it gave some. */
function problem(answer) {
  if (answer.status === 0) return answer.text;
  const said = answer.data && (typeof answer.data.error === "string" ? answer.data.error
    : answer.data.error && answer.data.error.message);
  const why = said || answer.text || "";
  if (answer.status === 401) return `${why} Enter a key above (lanai keys create).`.trim();
  if (answer.status === 403) return `${why} This needs an admin key (lanai keys create --role admin).`.trim();
  return `${answer.status}: ${why}`;
}

function notice(text, kind = "") {
  return h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}

function signInNotice(answer) {
  return notice(
    `${problem(answer)} The figures on this page are for admins: an admin key, a paired admin device, or a browser on the box itself.`,
  );
}

// -- the key ---------------------------------------------------------------------------------------------

function showKeyState() {
  const key = lanaiKey();
  $("#key-state").textContent = key ? "key set for this tab" : "no key";
  $("#forget").hidden = !key;
  $("#key").value = "";
}

function setUpKey(onChange) {
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const key = $("#key").value.trim();
    if (key) sessionStorage.setItem(KEY_ITEM, key);
    showKeyState();
    onChange();
  });
  $("#forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_ITEM);
    showKeyState();
    onChange();
  });
  showKeyState();
}

// -- copyable examples -----------------------------------------------------------------------------------

const shellQuote = (s) => `'${s.replace(/'/g, `'\\''`)}'`;
const psQuote = (s) => `'${s.replace(/'/g, "''")}'`;
const csVerbatim = (s) => `@"${s.replace(/"/g, '""')}"`;

/** The same call as curl, PowerShell and C#: {kind: "image"|"json", path, json?}. */
function examples(call) {
  const base = location.origin;
  const url = base + call.path;
  const keyed = !!lanaiKey();
  const curlKey = keyed ? ` -H "Authorization: Bearer $LANAI_KEY"` : "";
  const psKey = keyed ? ` -Headers @{ Authorization = "Bearer $env:LANAI_KEY" }` : "";
  const csKey = keyed
    ? `http.DefaultRequestHeaders.Authorization = new("Bearer", Environment.GetEnvironmentVariable("LANAI_KEY"));\n`
    : "";
  if (call.kind === "image") {
    return {
      curl: `curl${curlKey} -F file=@photo.jpg "${url}"`,
      PowerShell: `Invoke-RestMethod -Method Post -Uri "${url}" -InFile photo.jpg -ContentType image/jpeg${psKey}`,
      "C#": `using var http = new HttpClient();\n${csKey}using var body = new ByteArrayContent(File.ReadAllBytes("photo.jpg"));\n` +
        `body.Headers.ContentType = new("image/jpeg");\nvar answer = await http.PostAsync("${url}", body);\n` +
        `Console.WriteLine(await answer.Content.ReadAsStringAsync());`,
    };
  }
  const json = JSON.stringify(call.json);
  const pretty = JSON.stringify(call.json, null, 2);
  return {
    curl: `curl${curlKey} -H "Content-Type: application/json" -d ${shellQuote(json)} "${url}"`,
    PowerShell: `$body = ${psQuote(json)}\nInvoke-RestMethod -Method Post -Uri "${url}" -ContentType application/json -Body $body${psKey}`,
    "C#": `using var http = new HttpClient();\n${csKey}var json = ${csVerbatim(pretty)};\n` +
      `var answer = await http.PostAsync("${url}", new StringContent(json, System.Text.Encoding.UTF8, "application/json"));\n` +
      `Console.WriteLine(await answer.Content.ReadAsStringAsync());`,
  };
}

function copyText(text, button) {
  const done = () => { button.textContent = "Copied"; setTimeout(() => (button.textContent = "Copy"), 1500); };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(text).then(done, () => {});
    return;
  }
  const area = h("textarea", { readonly: true, style: "position:fixed;opacity:0" }, text);
  document.body.append(area);
  area.select();
  try { document.execCommand("copy"); done(); } catch (err) { /* select the text and copy by hand */ }
  area.remove();
}

/** Tabs of curl / PowerShell / C# for ``call``, refreshed when the call changes. */
function examplePanel() {
  const tabs = h("div", { class: "tabs", role: "tablist" });
  const code = h("pre", { class: "example" });
  const copy = h("button", { type: "button", class: "plain", onclick: () => copyText(code.textContent, copy) }, "Copy");
  const panel = h("div", { class: "examples" }, h("h3", {}, "The same call from your code"), tabs, code, copy);
  let chosen = "curl";
  let current = null;
  const render = () => {
    if (!current) return;
    const all = examples(current);
    fill(tabs, Object.keys(all).map((name) =>
      h("button", { type: "button", role: "tab", class: name === chosen ? "here" : "", "aria-selected": String(name === chosen),
        onclick: () => { chosen = name; render(); } }, name)));
    code.textContent = all[chosen];
  };
  panel.show = (call) => { current = call; render(); };
  return panel;
}

// -- status ----------------------------------------------------------------------------------------------

let statusTimer = null;

async function statusPage() {
  const root = fill(main(), h("h1", {}, "Status"), h("div", { id: "status-body" }, h("p", { class: "muted" }, "Asking the box…")));
  const body = root.querySelector("#status-body");
  const tick = async () => {
    const answer = await api("GET", "/v1/status");
    if (answer.ok) {
      renderStatus(body, answer.data);
    } else {
      await renderPublicStatus(body, answer);
    }
    clearTimeout(statusTimer);
    const every = answer.ok && answer.data.interval_s ? answer.data.interval_s : 10;
    if (document.body.dataset.page === "status") statusTimer = setTimeout(tick, Math.max(2, every) * 1000);
  };
  await tick();
}

function stateBadge(status) {
  const kind = status === "healthy" ? "ok" : status === "degraded" ? "warn" : "bad";
  return h("span", { class: `badge ${kind}` }, status);
}

function card(label, value, ...more) {
  return h("div", { class: "card" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value), ...more);
}

function renderStatus(body, s) {
  const d = s.device;
  const history = s.history || {};
  const used = d.memory_total_mb - d.memory_available_mb;
  const temperature = d.temperature_c === null ? "no sensor" : `${fmt.num(d.temperature_c)} °C`;
  const throttled = d.throttled && d.throttled.length ? h("div", { class: "bad" }, "throttled: " + d.throttled.join(", ")) : null;
  fill(body,
    h("div", { class: "cards" },
      card("State", stateBadge(s.status), s.reason ? h("div", { class: "muted" }, s.reason) : null),
      card("Up", fmt.uptime(s.uptime_s), h("div", { class: "muted" }, `lanai ${s.version}`)),
      card("CPU", `${fmt.num(d.cpu_percent, 0)} %`,
        h("div", { class: "muted", title: d.cpus_reason || "" }, `${d.cpu_count} of ${d.cpus_online || d.cpu_count} CPUs · ${d.machine}`),
        spark(history.cpu_percent)),
      card("Memory", fmt.mb(used), h("div", { class: "muted" }, `of ${fmt.mb(d.memory_total_mb)} · lanai ${fmt.mb(d.process_rss_mb)}`), spark(history.rss_mb)),
      card("Temperature", temperature, throttled, spark(history.temperature_c)),
    ),
    h("h2", {}, "Models"),
    modelTable(s.models || []),
    (s.failed || []).length ? h("div", {}, h("h2", {}, "Did not load"), (s.failed || []).map((f) => notice(`${f.name}: ${f.error}`, "error"))) : null,
    h("h2", {}, "Recent errors"),
    (s.errors || []).length
      ? h("div", { class: "scroll" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "When"), h("th", {}, "Level"), h("th", {}, "Where"), h("th", {}, "What"))),
        h("tbody", {}, [...s.errors].reverse().map((e) => h("tr", {}, h("td", {}, fmt.time(e.time)),
          h("td", { class: e.level === "WARNING" ? "warn" : "bad" }, e.level), h("td", {}, e.logger), h("td", { style: "white-space:normal" }, e.message))))))
      : h("p", { class: "muted" }, "None since the server started."),
    h("p", { class: "muted" }, `Figures over the last minutes, sampled every ${s.interval_s} s by the box itself.`),
  );
}

function modelTable(models) {
  if (!models.length) return h("p", { class: "muted" }, "No model is loaded. Add one with lanai models add, or see Models.");
  return h("div", { class: "scroll" }, h("table", { id: "models-table" },
    h("thead", {}, h("tr", {}, ["Model", "Version", "Task", "Runs on", "Queue", "Requests/s", "p50 ms", "p95 ms"].map((t, i) =>
      h("th", { class: i >= 4 ? "num" : "" }, t)))),
    h("tbody", {}, models.map((m) => h("tr", { dataset: { model: m.name } },
      h("td", {}, h("a", { href: "/ui/try?model=" + encodeURIComponent(m.name) }, m.name)),
      h("td", {}, m.version),
      h("td", {}, m.task),
      h("td", {}, [m.backend, m.execution_provider].filter(Boolean).join(" · ")),
      h("td", { class: "num" }, m.queue_depth),
      h("td", { class: "num" }, h("span", { class: "numspark" }, m.history ? spark(m.history.requests_per_s, 80, 18) : null, fmt.num(m.requests_per_s))),
      h("td", { class: "num" }, fmt.ms(m.p50_ms)),
      h("td", { class: "num" }, fmt.ms(m.p95_ms)),
    )))));
}

async function renderPublicStatus(body, refused) {
  const [health, models] = await Promise.all([api("GET", "/health"), api("GET", "/v1/models")]);
  const state = health.data || {};
  fill(body,
    h("div", { class: "cards" }, card("State", stateBadge(state.status || "unavailable"), state.reason ? h("div", { class: "muted" }, state.reason) : null)),
    h("h2", {}, "Models"),
    models.ok
      ? modelTable(models.data.data.map((m) => ({ name: m.id, version: "", task: m.task, backend: m.status, queue_depth: "–" })))
      : notice(problem(models), "error"),
    signInNotice(refused),
  );
}

// -- try it ----------------------------------------------------------------------------------------------

const IMAGE_TASKS = ["classify", "detect", "ocr", "embed-image"]; // task names as /v1/models gives them
const TEXT_TASKS = ["classify-text", "redact", "embed"];
const SAMPLE_TEXT = {
  "classify-text": "The invoice is overdue: please pay the amount owed within 14 days.",
  redact: "Dear Ms. Jane Doe, your account DE89 3704 0044 0532 0130 00 was charged on 3 March 2026. Call +44 20 7946 0958 or write to jane.doe@example.com.",
  embed: "A cat sleeping on a warm windowsill.",
};

async function tryPage() {
  const root = fill(main(), h("h1", {}, "Try it"), h("div", { id: "try-body" }, h("p", { class: "muted" }, "Asking the box…")));
  const body = root.querySelector("#try-body");
  const [models, pipelines] = await Promise.all([api("GET", "/v1/models"), api("GET", "/v1/pipelines")]);
  if (!models.ok) return fill(body, notice(problem(models), "error"));
  const choices = models.data.data.map((m) => ({ value: "model:" + m.id, label: `${m.id} (${m.task})`, model: m.id, task: m.task }));
  if (pipelines.ok) {
    for (const p of pipelines.data.pipelines) {
      choices.push({ value: "pipeline:" + p.name, label: `${p.name} (pipeline)`, pipeline: p });
    }
  }
  if (!choices.length) return fill(body, notice("No model is loaded yet: add one with lanai models add, or load one on the Models page."));
  const wanted = new URLSearchParams(location.search).get("model");
  const select = h("select", { id: "try-model", "aria-label": "Model" }, choices.map((c) =>
    h("option", { value: c.value, selected: c.model === wanted }, c.label)));
  const panel = h("div", { id: "try-panel" });
  const show = () => {
    const choice = choices.find((c) => c.value === select.value);
    history.replaceState(null, "", choice.model ? "/ui/try?model=" + encodeURIComponent(choice.model) : "/ui/try");
    fill(panel, choice.pipeline ? pipelinePanel(choice.pipeline) : taskPanel(choice.model, choice.task));
  };
  select.addEventListener("change", show);
  fill(body, h("div", { class: "row" }, h("label", { for: "try-model" }, "Model"), select), panel);
  show();
}

function taskPanel(model, task) {
  if (IMAGE_TASKS.includes(task)) return imagePanel(model, task);
  if (TEXT_TASKS.includes(task)) return textPanel(model, task);
  if (task === "chat" || task === "completion") return chatPanel(model, task);
  return h("div", {}, notice(`${model} takes raw tensors (task ${task}): call it over the Open Inference Protocol, POST /v2/models/${model}/infer; see API.`));
}

/** A drop zone and file picker; calls ``onImage(file)``. */
function dropZone(onImage) {
  const input = h("input", { type: "file", accept: "image/*", id: "try-file", hidden: true });
  const zone = h("div", { class: "drop", tabindex: "0", role: "button", "aria-label": "Choose a photo",
    onclick: () => input.click(), onkeydown: (e) => { if (e.key === "Enter" || e.key === " ") input.click(); } },
  "Drop a photo here, or click to choose one");
  input.addEventListener("change", () => input.files[0] && onImage(input.files[0]));
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files[0]) onImage(e.dataTransfer.files[0]);
  });
  return h("div", {}, zone, input);
}

function imagePanel(model, task) {
  const query = task === "classify" ? "?top_k=5" : "";
  const path = `/v1/models/${encodeURIComponent(model)}/${task}${query}`;
  const result = h("div", { class: "result", id: "try-result", "aria-live": "polite" });
  const ex = examplePanel();
  ex.show({ kind: "image", path });
  const run = async (file) => {
    fill(result, h("p", { class: "muted" }, `Sending ${file.name}…`));
    const form = new FormData();
    form.append("file", file, file.name);
    const started = performance.now();
    const answer = await api("POST", path, { body: form });
    const ms = performance.now() - started;
    if (!answer.ok) return fill(result, notice(problem(answer), "error"));
    const timing = answer.data.timing || {};
    const model = timing.compute_ms === undefined ? "" // OCR's timing is by stage
      : ` (the model ${fmt.ms(timing.compute_ms)} ms, batch of ${timing.batch_size || 1})`;
    const took = h("p", { class: "muted", id: "try-took" }, `${Math.round(ms)} ms here, ${fmt.ms(timing.total_ms)} ms in the box${model}`);
    if (task === "classify") return fill(result, predictions(answer.data), took);
    if (task === "detect") return fill(result, await drawDetections(file, answer.data), detectionTable(answer.data), took);
    if (task === "ocr") return fill(result, h("pre", { id: "ocr-text" }, answer.data.text || "(no text found)"), took);
    return fill(result, h("p", {}, `A vector of ${answer.data.embedding ? answer.data.embedding.length : "?"} numbers.`), took);
  };
  return h("div", {}, dropZone(run), result, ex);
}

function predictions(data) {
  const rows = data.predictions || [];
  const top = rows.length ? rows[0].score : 1;
  return h("div", {},
    h("p", {}, h("strong", { id: "top-label" }, data.label), ` — ${(data.score * 100).toFixed(1)} %`),
    h("div", { class: "scroll" }, h("table", { class: "bars" }, h("tbody", {}, rows.map((p) => h("tr", {},
      h("td", {}, p.label), h("td", { class: "num" }, (p.score * 100).toFixed(1) + " %"),
      h("td", {}, h("div", { class: "bar", style: `width:${Math.max(1, (p.score / (top || 1)) * 100).toFixed(1)}%` }))))))));
}

async function drawDetections(file, data) {
  const image = await createImageBitmap(file, { imageOrientation: "from-image" });
  const canvas = h("canvas", { id: "detect-canvas", width: image.width, height: image.height });
  const ctx = canvas.getContext("2d");
  ctx.drawImage(image, 0, 0);
  const scaleX = image.width / (data.width || image.width), scaleY = image.height / (data.height || image.height);
  const line = Math.max(2, Math.round(image.width / 300));
  ctx.font = `${Math.max(12, Math.round(image.width / 45))}px system-ui, sans-serif`;
  for (const d of data.detections || []) {
    const { x1, y1, x2, y2 } = d.box;
    ctx.strokeStyle = "#ffcc00";
    ctx.lineWidth = line;
    ctx.strokeRect(x1 * scaleX, y1 * scaleY, (x2 - x1) * scaleX, (y2 - y1) * scaleY);
    const text = `${d.label} ${(d.score * 100).toFixed(0)}%`;
    const width = ctx.measureText(text).width + 8;
    const height = parseInt(ctx.font, 10) + 6;
    ctx.fillStyle = "#ffcc00";
    ctx.fillRect(x1 * scaleX, Math.max(0, y1 * scaleY - height), width, height);
    ctx.fillStyle = "#000";
    ctx.fillText(text, x1 * scaleX + 4, Math.max(height - 6, y1 * scaleY - 6));
  }
  return h("div", { class: "shot" }, canvas);
}

function detectionTable(data) {
  const found = data.detections || [];
  if (!found.length) return h("p", { class: "muted" }, "Nothing found above the score threshold.");
  return h("div", { class: "scroll" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "Label"), h("th", { class: "num" }, "Score"), h("th", {}, "Box (x1, y1, x2, y2)"))),
    h("tbody", {}, found.map((d) => h("tr", {}, h("td", {}, d.label), h("td", { class: "num" }, (d.score * 100).toFixed(1) + " %"),
      h("td", {}, [d.box.x1, d.box.y1, d.box.x2, d.box.y2].map((v) => Math.round(v)).join(", ")))))));
}

function textPanel(model, task) {
  const path = `/v1/models/${encodeURIComponent(model)}/${task}`;
  const area = h("textarea", { id: "try-text", "aria-label": "Text" }, SAMPLE_TEXT[task] || "");
  const result = h("div", { class: "result", id: "try-result", "aria-live": "polite" });
  const ex = examplePanel();
  const refresh = () => ex.show({ kind: "json", path, json: { text: area.value } });
  area.addEventListener("input", refresh);
  refresh();
  const go = h("button", { type: "button", id: "try-run" }, task === "redact" ? "Find what to redact" : "Run");
  go.addEventListener("click", async () => {
    go.disabled = true;
    fill(result, h("p", { class: "muted" }, "Working…"));
    const answer = await api("POST", path, { json: { text: area.value } });
    go.disabled = false;
    if (!answer.ok) return fill(result, notice(problem(answer), "error"));
    if (task === "classify-text") return fill(result, predictions(answer.data));
    if (task === "redact") return fill(result, highlighted(area.value, answer.data));
    return fill(result, h("p", {}, `A vector of ${(answer.data.embedding || answer.data.vector || []).length} numbers.`));
  });
  return h("div", {}, area, h("div", { class: "row" }, go), result, ex);
}

/** The text with each span found marked, and the redacted text the server made. */
function highlighted(text, data) {
  const spans = [...(data.entities || [])].sort((a, b) => a.start - b.start);
  const points = Array.from(text); // spans count code points
  const parts = [];
  let at = 0;
  for (const span of spans) {
    if (span.start < at) continue;
    parts.push(points.slice(at, span.start).join(""));
    parts.push(h("mark", { title: `${span.type}, ${(span.score * 100).toFixed(0)} %` }, points.slice(span.start, span.end).join(""), h("small", {}, span.type)));
    at = span.end;
  }
  parts.push(points.slice(at).join(""));
  return h("div", {},
    h("h3", {}, `${spans.length} found`),
    h("div", { class: "redacted", id: "redact-marked" }, parts),
    h("h3", {}, "Redacted"),
    h("pre", { id: "redact-text" }, data.text));
}

function chatPanel(model, task) {
  const path = task === "chat" ? "/v1/chat/completions" : "/v1/completions";
  const log = h("div", { class: "chat", id: "chat-log", "aria-live": "polite" });
  const input = h("textarea", { id: "chat-input", "aria-label": "Message", style: "min-height:4rem" },
    task === "chat" ? "Name three things a small office server is good for." : "A small office server is good for");
  const maxTokens = h("input", { type: "number", id: "chat-max", value: "96", min: "1", max: "4096", style: "width:6rem", "aria-label": "Max tokens" });
  const send = h("button", { type: "button", id: "chat-send" }, task === "chat" ? "Send" : "Complete");
  const stop = h("button", { type: "button", class: "plain", hidden: true }, "Stop");
  const ex = examplePanel();
  const messages = [];
  const request = (text) => task === "chat"
    ? { model, messages: [...messages, ...(text ? [{ role: "user", content: text }] : [])], max_tokens: Number(maxTokens.value) }
    : { model, prompt: text, max_tokens: Number(maxTokens.value) };
  const refresh = () => ex.show({ kind: "json", path, json: request(input.value) });
  input.addEventListener("input", refresh);
  maxTokens.addEventListener("input", refresh);
  refresh();
  let controller = null;
  stop.addEventListener("click", () => controller && controller.abort());
  send.addEventListener("click", async () => {
    const text = input.value.trim();
    if (!text) return;
    const body = { ...request(text), stream: true };
    log.append(h("div", { class: "msg user" }, text));
    const out = h("div", { class: "msg assistant" }, "…");
    log.append(out);
    send.disabled = true;
    stop.hidden = false;
    controller = new AbortController();
    let said = "";
    try {
      const key = lanaiKey();
      const response = await fetch(path, { method: "POST", signal: controller.signal,
        headers: { "Content-Type": "application/json", ...(key ? { Authorization: "Bearer " + key } : {}) },
        body: JSON.stringify(body) });
      if (!response.ok) {
        const textBody = await response.text();
        let data = null;
        try { data = JSON.parse(textBody); } catch (err) { data = null; }
        out.replaceWith(notice(problem({ status: response.status, data, text: textBody }), "error"));
        return;
      }
      out.textContent = "";
      for await (const event of serverEvents(response)) {
        const choice = event.choices && event.choices[0];
        const piece = choice ? (choice.delta ? choice.delta.content : choice.text) : null;
        if (piece) { said += piece; out.textContent = said; }
      }
      if (task === "chat") messages.push({ role: "user", content: text }, { role: "assistant", content: said });
      input.value = "";
      refresh();
    } catch (err) {
      if (err.name !== "AbortError") out.after(notice(`the stream broke: ${err.message}`, "error"));
    } finally {
      out.classList.add("done");
      send.disabled = false;
      stop.hidden = true;
      controller = null;
    }
  });
  return h("div", {}, log, input, h("div", { class: "row" }, send, stop, h("label", { for: "chat-max" }, "max tokens"), maxTokens), ex);
}

/** The JSON events of a server-sent-events response, until [DONE]. */
async function* serverEvents(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trim()).join("\n");
      if (!data) continue;
      if (data === "[DONE]") return;
      yield JSON.parse(data);
    }
  }
}

function pipelinePanel(pipeline) {
  const path = `/v1/pipelines/${encodeURIComponent(pipeline.name)}`;
  const result = h("div", { class: "result", id: "try-result", "aria-live": "polite" });
  const ex = examplePanel();
  ex.show({ kind: "image", path });
  const steps = h("ol", {}, pipeline.steps.map((s) => h("li", {}, `${s.name}: ${s.task}${s.model ? " on " + s.model : ""}`)));
  const run = async (file) => {
    fill(result, h("p", { class: "muted" }, `Sending ${file.name}…`));
    const form = new FormData();
    form.append("file", file, file.name);
    const answer = await api("POST", path, { body: form });
    if (!answer.ok) return fill(result, notice(problem(answer), "error"));
    fill(result, h("p", {}, `${answer.data.status}${answer.data.failed_step ? ", failed at " + answer.data.failed_step : ""}`),
      answer.data.steps.map((s) => h("div", { dataset: { step: s.name } }, h("h3", {}, `${s.name} — ${s.status}, ${fmt.ms(s.ms)} ms`),
        s.error ? notice(s.error, "error") : h("pre", {}, JSON.stringify(s.output, null, 2)))));
  };
  return h("div", {}, h("h3", {}, "Steps"), steps, dropZone(run), result, ex);
}

// -- models ----------------------------------------------------------------------------------------------

async function modelsPage() {
  fill(main(), h("h1", {}, "Models"), h("div", { id: "models-msg", "aria-live": "polite" }),
    h("div", { id: "models-body" }, h("p", { class: "muted" }, "Asking the box…")), h("div", { id: "report" }));
  await refreshModels();
}

/** The models and their versions, again (after an action: its message stays). */
async function refreshModels() {
  const body = $("#models-body");
  const answer = await api("GET", "/v1/admin/models");
  if (!answer.ok) return fill(body, signInNotice(answer));
  const models = answer.data.models || [];
  if (!models.length) return fill(body, notice("The store is empty: lanai models add NAME FILE adds a model."));
  fill(body, models.map(modelCard));
}

/** Run an admin action and say how it went; refresh the page's data after it. */
async function act(label, method, path, json) {
  const msg = $("#models-msg") || $("#security-msg");
  fill(msg, notice(`${label}…`));
  const answer = await api(method, path, json === undefined ? {} : { json });
  fill(msg, answer.ok ? notice(`${label}: done.`, "done") : notice(`${label}: ${problem(answer)}`, "error"));
  return answer;
}

function modelCard(m) {
  const name = encodeURIComponent(m.name);
  const reload = () => refreshModels();
  const loaded = m.serving !== null && m.serving !== undefined;
  const buttons = h("div", { class: "row" },
    loaded
      ? h("button", { type: "button", class: "plain", onclick: async () => { await act(`Unload ${m.name}`, "POST", `/v2/repository/models/${name}/unload`); reload(); } }, "Unload")
      : h("button", { type: "button", class: "plain", onclick: async () => { await act(`Load ${m.name}`, "POST", `/v2/repository/models/${name}/load`); reload(); } }, "Load"),
    m.versions.length > 1
      ? h("button", { type: "button", class: "plain", onclick: async () => { await act(`Roll ${m.name} back`, "POST", `/v1/admin/models/${name}/rollback`); reload(); } }, "Roll back")
      : null,
  );
  return h("section", { class: "card", style: "margin-bottom:.8rem", dataset: { model: m.name } },
    h("h2", { style: "margin-top:0" }, m.name, " ", h("span", { class: "badge " + (loaded ? "ok" : m.state === "failed" ? "bad" : "warn") }, m.state)),
    h("p", { class: "muted" }, `${m.task} · active version ${m.active || "none"}${loaded ? ` · serving ${m.serving}` : ""}`),
    buttons,
    h("div", { class: "scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", {}, "Version"), h("th", {}, "Added"), h("th", {}, "Backend"), h("th", { class: "num" }, "Size"), h("th", {}, ""), h("th", {}, ""))),
      h("tbody", {}, m.versions.map((v) => h("tr", {},
        h("td", {}, v.version, v.active ? h("span", { class: "badge ok", style: "margin-left:.4rem" }, "active") : null),
        h("td", {}, fmt.when(v.created)),
        h("td", {}, v.backend),
        h("td", { class: "num" }, fmt.bytes(v.size_bytes)),
        h("td", {}, v.active ? null : h("button", { type: "button", onclick: async () => { await act(`Activate ${m.name} version ${v.version}`, "POST", `/v1/admin/models/${name}/activate`, { version: v.version }); reload(); } }, "Activate")),
        h("td", {}, v.report ? h("button", { type: "button", class: "plain", onclick: () => showReport(m.name, v.version) }, "Report") : null),
      ))))));
}

async function showReport(model, version) {
  const target = $("#report");
  const base = `/v1/admin/models/${encodeURIComponent(model)}/versions/${encodeURIComponent(version)}/report`;
  fill(target, h("p", { class: "muted" }, "Fetching the report…"));
  const answer = await api("GET", base);
  if (!answer.ok) return fill(target, notice(problem(answer), "error"));
  const parts = [h("h2", {}, `${model} version ${version}: optimisation report`)];
  if (answer.data.chart) {
    const png = await api("GET", base + ".png", { raw: true });
    if (png.ok) parts.push(h("img", { src: URL.createObjectURL(await png.response.blob()), alt: "The report's chart", style: "max-width:100%" }));
  }
  parts.push(markdown(answer.data.markdown || ""));
  fill(target, h("section", { class: "card" }, parts));
  target.scrollIntoView({ behavior: "smooth" });
}

/** A report's Markdown as elements: headings, tables, lists and paragraphs (text only, never HTML). */
function markdown(text) {
  const out = h("div", { class: "md" });
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (!line.trim()) continue;
    const heading = /^(#{1,4})\s+(.*)$/.exec(line);
    if (heading) { out.append(h("h" + Math.min(4, heading[1].length + 1), {}, heading[2])); continue; }
    if (line.trim().startsWith("|")) {
      const rows = [];
      while (i < lines.length && lines[i].trim().startsWith("|")) rows.push(lines[i++]);
      i--;
      const cells = (row) => row.trim().replace(/^\||\|$/g, "").split("|").map((c) => c.trim().replace(/\*\*/g, ""));
      const body = rows.filter((r, k) => !(k === 1 && /^[\s|:-]+$/.test(r)));
      out.append(h("div", { class: "scroll" }, h("table", {}, h("thead", {}, h("tr", {}, cells(body[0]).map((c) => h("th", {}, c)))),
        h("tbody", {}, body.slice(1).map((r) => h("tr", {}, cells(r).map((c) => h("td", {}, c))))))));
      continue;
    }
    if (/^\s*[-*]\s+/.test(line)) {
      const items = [];
      while (i < lines.length && /^\s*[-*]\s+/.test(lines[i])) items.push(lines[i++].replace(/^\s*[-*]\s+/, ""));
      i--;
      out.append(h("ul", {}, items.map((t) => h("li", {}, t.replace(/\*\*|`/g, "")))));
      continue;
    }
    if (/^!\[/.test(line)) continue; // the chart, shown above
    out.append(h("p", {}, line.replace(/\*\*|`/g, "")));
  }
  return out;
}

// -- security --------------------------------------------------------------------------------------------

async function securityPage() {
  fill(main(), h("h1", {}, "Security"), h("div", { id: "security-msg", "aria-live": "polite" }),
    h("div", { id: "security-body" }, h("p", { class: "muted" }, "Asking the box…")));
  await refreshSecurity();
}

/** The certificate, pairing, keys and devices, again (after an action: its message stays). */
async function refreshSecurity() {
  const body = $("#security-body");
  const [tls, keys, devices, pairing] = await Promise.all([
    api("GET", "/v1/admin/tls"), api("GET", "/v1/admin/keys"), api("GET", "/v1/admin/devices"), api("GET", "/v1/admin/pairing"),
  ]);
  if (!keys.ok) return fill(body, signInNotice(keys));
  fill(body,
    h("h2", {}, "Certificate"), tlsCard(tls),
    h("h2", {}, "Pair a device"), pairingCard(pairing),
    h("h2", {}, "Keys"), keysCard(keys.data.keys || []),
    h("h2", {}, "Paired devices"), devicesCard(devices.ok ? devices.data.devices || [] : []),
  );
}

function tlsCard(tls) {
  if (!tls.ok) return notice(problem(tls), "error");
  const t = tls.data;
  if (!t.enabled) return h("div", { class: "card" }, "This box serves plain HTTP. ", h("span", { class: "muted" }, "lanai certs init and tls = true serve HTTPS with the box's own CA."));
  const days = t.days_left;
  return h("div", { class: "card" },
    h("div", {}, h("span", { class: "label muted" }, "SHA-256 fingerprint "), h("div", { class: "secret", id: "tls-fingerprint" }, t.fingerprint_sha256)),
    h("div", {}, h("span", { class: "muted" }, "Subject "), t.subject || "–"),
    h("div", {}, h("span", { class: "muted" }, "Expires "), fmt.when(t.not_after), " ",
      h("span", { class: "badge " + (days > 30 ? "ok" : days > 7 ? "warn" : "bad") }, `${days} days left`)),
    h("div", { class: "muted" }, t.mtls ? "Client certificates are asked for (mTLS)." : "Client certificates are not asked for."));
}

function pairingCard(pairing) {
  const holder = h("div", { class: "card", id: "pairing" });
  const role = h("select", { id: "pair-role", "aria-label": "Role" }, h("option", { value: "infer" }, "infer"), h("option", { value: "admin" }, "admin"));
  const draw = (state) => {
    if (state && state.open && state.code) {
      const left = Math.max(0, Math.round(state.expires - Date.now() / 1000));
      const host = location.host;
      fill(holder,
        h("div", { class: "label muted" }, "Pairing code"),
        h("div", { class: "code", id: "pair-code" }, state.code),
        h("p", {}, `On the device, within ${left} s: `, h("code", {}, `lanai pair ${host} ${state.code}`)),
        h("button", { type: "button", class: "plain", onclick: async () => { await act("Close pairing", "DELETE", "/v1/admin/pairing"); draw(null); } }, "Close"));
      return;
    }
    fill(holder,
      h("p", {}, "A device pairs with a one-time code and gets its own key (and a client certificate under TLS)."),
      h("div", { class: "row" }, h("label", { for: "pair-role" }, "Role"), role,
        h("button", { type: "button", id: "pair-open", onclick: async () => {
          const answer = await act("Open pairing", "POST", "/v1/admin/pairing", { role: role.value });
          if (answer.ok) draw({ open: true, code: answer.data.code, expires: answer.data.expires });
        } }, "Show a pairing code")));
  };
  draw(pairing.ok && pairing.data.open ? { open: true, code: null } : null);
  if (pairing.ok && pairing.data.open) {
    holder.prepend(notice("A pairing is open (its code was shown where it was opened)."));
  }
  return holder;
}

function keysCard(all) {
  const keys = all.filter((k) => !k.device); // a paired device's key is listed under Paired devices
  const name = h("input", { id: "key-name", placeholder: "name, e.g. front-desk", "aria-label": "Key name", required: true });
  const role = h("select", { id: "key-role", "aria-label": "Role" }, h("option", { value: "infer" }, "infer"), h("option", { value: "admin" }, "admin"));
  const models = h("input", { id: "key-models", placeholder: "models (all if empty)", "aria-label": "Models" });
  const shown = h("div", { id: "key-shown" });
  const create = h("form", { class: "row", onsubmit: async (event) => {
    event.preventDefault();
    const json = { name: name.value.trim(), role: role.value };
    const only = models.value.split(",").map((s) => s.trim()).filter(Boolean);
    if (only.length) json.models = only;
    const answer = await act(`Create key ${json.name}`, "POST", "/v1/admin/keys", json);
    if (!answer.ok) return;
    await refreshSecurity();
    const copy = h("button", { type: "button", class: "plain" }, "Copy");
    const secret = h("div", { class: "secret", id: "new-key" }, answer.data.key);
    copy.addEventListener("click", () => copyText(answer.data.key, copy));
    fill($("#key-shown"), notice(h("div", {}, h("strong", {}, `Key ${answer.data.name} (${answer.data.role}): shown this once, copy it now.`), secret, copy), "done"));
  } }, name, role, models, h("button", { type: "submit" }, "Create key"));
  return h("div", {},
    keys.length ? h("div", { class: "scroll" }, h("table", { id: "keys-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Role"), h("th", {}, "Models"), h("th", {}, "Created"), h("th", {}, ""))),
      h("tbody", {}, keys.map((k) => h("tr", { dataset: { key: k.name } },
        h("td", {}, k.name), h("td", {}, k.role), h("td", {}, (k.models || []).join(", ") || "all"), h("td", {}, fmt.when(k.created)),
        h("td", {}, h("button", { type: "button", class: "danger", onclick: async () => {
          if (!confirm(`Revoke key ${k.name}? Clients using it are refused from now on.`)) return;
          await act(`Revoke key ${k.name}`, "DELETE", `/v1/admin/keys/${encodeURIComponent(k.name)}`);
          refreshSecurity();
        } }, "Revoke"))))))) : h("p", { class: "muted" }, "No keys yet."),
    create, shown);
}

function devicesCard(devices) {
  if (!devices.length) return h("p", { class: "muted" }, "No device has paired.");
  return h("div", { class: "scroll" }, h("table", { id: "devices-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "Device"), h("th", {}, "Role"), h("th", {}, "Certificate"), h("th", {}, "Paired"), h("th", {}, ""))),
    h("tbody", {}, devices.map((d) => h("tr", {},
      h("td", {}, d.name), h("td", {}, d.role), h("td", { class: "secret" }, d.fingerprint ? d.fingerprint.slice(0, 23) + "…" : "–"), h("td", {}, fmt.when(d.paired_at)),
      h("td", {}, h("button", { type: "button", class: "danger", onclick: async () => {
        if (!confirm(`Revoke ${d.name}? It is refused from now on.`)) return;
        await act(`Revoke ${d.name}`, "DELETE", `/v1/admin/devices/${encodeURIComponent(d.name)}`);
        refreshSecurity();
      } }, "Revoke")))))));
}

// -- the page --------------------------------------------------------------------------------------------

const PAGES = { status: statusPage, try: tryPage, models: modelsPage, security: securityPage };

function currentPage() {
  if (document.body.dataset.page === "docs") return "docs";
  const path = location.pathname.replace(/\/+$/, "");
  const name = path.startsWith("/ui/") ? path.slice(4) : "status";
  return PAGES[name] ? name : "status";
}

/** The header every page shares: the pages, and the form for the key. */
function drawHeader(page) {
  const link = (href, name, text) =>
    h("a", { href, dataset: { page: name }, class: name === page ? "here" : null, "aria-current": name === page ? "page" : null }, text);
  fill(document.querySelector("header"),
    h("a", { class: "brand", href: "/" }, "lanai"),
    h("nav", {}, link("/", "status", "Status"), link("/ui/try", "try", "Try it"), link("/ui/models", "models", "Models"),
      link("/ui/security", "security", "Security"), link("/docs", "docs", "API")),
    h("form", { id: "key-form", class: "key", autocomplete: "off" },
      h("input", { type: "password", id: "key", placeholder: "API key", "aria-label": "API key", autocomplete: "off" }),
      h("button", { type: "submit" }, "Use"),
      h("button", { type: "button", id: "forget", hidden: true }, "Forget"),
      h("span", { id: "key-state", class: "muted" })));
}

window.addEventListener("DOMContentLoaded", () => {
  const page = currentPage();
  document.body.dataset.page = page;
  drawHeader(page);
  const draw = () => (PAGES[page] ? PAGES[page]() : null);
  setUpKey(() => { if (page === "docs") location.reload(); else draw(); });
  draw();
});
