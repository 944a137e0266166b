
"use strict";
const $ = (id) => document.getElementById(id);
const POLL_MS = 600;
const HEADERS = {"X-Dreamkit-Studio": "1"};
const state = {info: null, photo: null, table: null, model: null, job: null, gridJob: null,
               gridStart: 0, preview: -1};

const session = (() => {
  let id = sessionStorage.getItem("dreamkit-studio-session");
  if (!id) {
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    id = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    sessionStorage.setItem("dreamkit-studio-session", id);
  }
  return id;
})();

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: {...HEADERS, "Content-Type": "application/json"},
    body: JSON.stringify(body)};
  const response = await fetch(path, options);
  const data = await response.json().catch(() => ({error: `HTTP ${response.status}`}));
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

function say(text, bad = true) {
  $("message").textContent = text;
  $("message").className = bad ? "bad" : "good";
}

function option(select, value, text) {
  const o = document.createElement("option");
  o.value = value;
  o.textContent = text;
  select.appendChild(o);
  return o;
}

// ---------------------------------------------------------------- settings form

function buildSettings(fields) {
  const box = $("settings");
  box.textContent = "";
  for (const f of fields) {
    const label = document.createElement("label");
    label.className = "setting";
    label.title = `${f.help}: ${f.describe}`;
    const name = document.createElement("span");
    name.textContent = f.name.replace(/_/g, " ");
    label.appendChild(name);
    let input;
    if (f.choices.length || f.kind === "bool") {
      input = document.createElement("select");
      option(input, "", "default");
      for (const c of (f.choices.length ? f.choices : ["true", "false"])) option(input, c, c);
    } else {
      input = document.createElement("input");
      input.type = "number";
      const low = f.low ?? f.above;
      if (low !== null && low !== undefined) input.min = low;
      if (f.high !== null && f.high !== undefined) input.max = f.high;
      input.step = f.kind === "int" ? "1" : "any";
    }
    input.id = `s-${f.name}`;
    input.dataset.kind = f.kind;
    input.dataset.name = f.name;
    label.appendChild(input);
    const help = document.createElement("small");
    help.textContent = f.help;
    label.appendChild(help);
    box.appendChild(label);
  }
}

function showDefaults(defaults) {
  for (const f of state.info.settings) {
    const input = $(`s-${f.name}`);
    const value = defaults[f.name];
    const shown = value === null || value === undefined ? f.unset : String(value);
    if (input.tagName === "SELECT") input.options[0].textContent = `default (${shown})`;
    else input.placeholder = shown;
  }
}

function readSettings() {
  const out = {};
  for (const input of $("settings").querySelectorAll("input, select")) {
    const text = input.value.trim();
    if (text === "") continue;
    const kind = input.dataset.kind;
    if (kind === "int" || kind === "float") {
      const number = Number(text);
      out[input.dataset.name] = Number.isFinite(number) ? number : text;
    } else if (kind === "bool") {
      out[input.dataset.name] = text === "true";
    } else {
      out[input.dataset.name] = text;
    }
  }
  return out;
}

function fillSettings(values) {
  for (const [name, value] of Object.entries(values)) {
    const input = $(`s-${name}`);
    if (input) input.value = value === null ? "" : String(value);
  }
}

// ---------------------------------------------------------------- photo

async function uploadPhoto(file) {
  say("uploading…", false);
  try {
    const name = file.name.replace(/[^\x20-\x7e]/g, "_").slice(0, 200) || "photo";
    const response = await fetch("/api/upload", {
      method: "POST", headers: {...HEADERS, "X-Filename": name}, body: file});
    const data = await response.json().catch(() => ({error: `HTTP ${response.status}`}));
    if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
    usePhoto(data);
    $("sample").value = "";
    say(`uploaded ${data.name}`, false);
  } catch (error) {
    say(`upload refused: ${error.message}`);
  }
}

function usePhoto(photo) {
  state.photo = photo;
  $("photo-preview").src = photo.url;
  $("photo-preview").hidden = false;
  $("photo-info").textContent = `${photo.name}, ${photo.width}×${photo.height}`;
}

// ---------------------------------------------------------------- model and layers

async function useModel(spec) {
  try {
    $("layer-note").textContent = "";
    const table = await api(`/api/layers?model=${encodeURIComponent(spec)}`);
    state.model = spec;
    state.table = table;
    const layer = $("layer");
    layer.textContent = "";
    const body = $("layer-table").tBodies[0];
    body.textContent = "";
    for (const row of table.layers) {
      const star = Object.values(table.defaults).includes(row.name) ? " *" : "";
      option(layer, row.name, `${row.name} · ${row.tier} · ${row.channels} ch${star}`);
      const tr = body.insertRow();
      for (const v of [row.name + star, row.tier, row.channels, row.stride ?? "global"]) {
        tr.insertCell().textContent = String(v);
      }
    }
    layer.value = table.default;
    $("layer-note").textContent = `* the tier defaults; ${table.default} is the model's default`;
    showDefaults(table.settings);
    fillDirections();
    layerChanged();
    say(`model ${spec}: ${table.layers.length} layers`, false);
  } catch (error) {
    say(error.message);
  }
}

function layerInfo() {
  return state.table.layers.find((l) => l.name === $("layer").value);
}

function layerChanged() {
  const info = layerInfo();
  if (!info) return;
  $("channel").max = info.channels - 1;
  $("grid-layer").textContent = `${info.name} (${info.channels})`;
  $("grid").textContent = "";
  $("grid-prev").disabled = $("grid-next").disabled = true;
  $("grid-status").textContent = "";
}

function fillDirections() {
  const select = $("direction");
  select.textContent = "";
  const usable = state.info.directions.filter((d) => !d.error && d.model === state.model);
  for (const d of usable) {
    option(select, d.index, `${d.name} (${d.layer}, ${d.rows} rows)`).title = d.describe;
  }
  if (!usable.length) option(select, "", state.info.directions.length
    ? "none for this model" : "none (start with --directions DIR)");
  $("target-direction").disabled = !usable.length;
}

// ---------------------------------------------------------------- jobs

function describe(view) {
  if (view.status === "waiting") return `waiting in the queue: position ${view.position}`;
  if (view.status === "running") {
    const what = view.kind === "dream" ? "dreaming" : "rendering channels";
    return `${what}: step ${view.step} of at most ${view.steps}`;
  }
  return view.status;
}

function watch(view, onView, onEnd) {
  let timer = null;
  const tick = async () => {
    try {
      view = await api(`/api/job/${view.id}`);
    } catch (error) {
      clearInterval(timer);
      onEnd({status: "failed", message: error.message});
      return;
    }
    onView(view);
    if (["done", "failed", "cancelled"].includes(view.status)) {
      clearInterval(timer);
      onEnd(view);
    }
  };
  onView(view);
  timer = setInterval(tick, POLL_MS);
}

async function startDream() {
  if (!state.photo) { say("choose a photo first (upload one or pick a sample)"); return; }
  const ask = {session, photo: state.photo.id, model: state.model, layer: $("layer").value,
               negate: $("negate").checked, settings: readSettings()};
  const mode = document.querySelector("input[name=target]:checked").value;
  if (mode === "channel") ask.channel = Number($("channel").value);
  if (mode === "direction") {
    ask.direction = Number($("direction").value);
    ask.row = Number($("row").value);
  }
  try {
    const view = await api("/api/dream", ask);
    state.job = view.id;
    state.preview = -1;
    $("stop").disabled = false;
    say(`queued: ${view.label}`, false);
    watch(view, showJob, endJob);
  } catch (error) {
    say(error.message);
  }
}

function showJob(view) {
  $("status").textContent = describe(view);
  $("progress").max = Math.max(1, view.steps);
  $("progress").value = view.step;
  if (view.preview > 0 && view.preview !== state.preview && view.status === "running") {
    state.preview = view.preview;
    $("live").src = `/api/job/${view.id}/preview.png?v=${view.preview}`;
    $("live").hidden = false;
  }
}

function endJob(view) {
  state.job = null;
  $("stop").disabled = true;
  if (view.status === "done") {
    $("live").src = view.result.url;
    $("live").hidden = false;
    $("status").textContent = `done in ${view.seconds} s: ${view.result.label}`;
    say(`done: ${view.result.label}`, false);
    refreshGallery();
  } else {
    $("status").textContent = view.status;
    say(view.status === "cancelled" ? `stopped (${view.message})` : view.message);
  }
}

async function stopJob() {
  if (!state.job) return;
  try { await api(`/api/job/${state.job}/cancel`, {}); } catch (error) { say(error.message); }
}

// ---------------------------------------------------------------- channel grid

async function loadGrid(start) {
  state.gridStart = start;
  const layer = $("layer").value;
  try {
    const view = await api("/api/channels", {session, model: state.model, layer, start});
    drawGrid(view);
    const page = state.info.limits.grid_page;
    $("grid-prev").disabled = start === 0;
    $("grid-next").disabled = start + page >= view.channels;
    if (view.job) {
      $("grid-status").textContent = describe(view.job);
      watch(view.job, (v) => { $("grid-status").textContent = describe(v); }, (v) => {
        if (v.status === "done") loadGrid(start);
        else $("grid-status").textContent = `${v.status}: ${v.message}`;
      });
    } else {
      $("grid-status").textContent = `channels ${start} to ${start + view.tiles.length - 1}` +
        ` of ${view.channels}; click one to dream it`;
    }
  } catch (error) {
    $("grid-status").textContent = error.message;
  }
}

function drawGrid(view) {
  const grid = $("grid");
  grid.textContent = "";
  for (const t of view.tiles) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "tile";
    button.dataset.channel = t.channel;
    button.title = `channel ${t.channel} (${t.source})`;
    if (t.url) {
      const img = document.createElement("img");
      img.src = t.url;
      img.alt = `channel ${t.channel}`;
      button.appendChild(img);
    } else {
      button.classList.add("pending");
    }
    const caption = document.createElement("span");
    caption.textContent = t.channel;
    button.appendChild(caption);
    button.addEventListener("click", () => pickChannel(t.channel, button));
    grid.appendChild(button);
  }
}

function pickChannel(channel, button) {
  $("channel").value = channel;
  $("target-channel").checked = true;
  for (const b of $("grid").querySelectorAll(".tile")) b.classList.remove("chosen");
  button.classList.add("chosen");
  say(`channel ${channel} of ${$("layer").value} chosen: press Dream`, false);
}

// ---------------------------------------------------------------- session gallery

async function refreshGallery() {
  try {
    const data = await api(`/api/results?session=${session}`);
    const gallery = $("gallery");
    gallery.textContent = "";
    const first = data.results.length ? data.results[0].settings : {};
    for (const r of data.results.slice().reverse()) {
      const card = document.createElement("figure");
      card.className = "result";
      card.dataset.id = r.id;
      const img = document.createElement("img");
      img.src = r.url;
      img.alt = r.label;
      card.appendChild(img);
      const caption = document.createElement("figcaption");
      const title = document.createElement("strong");
      title.textContent = `${r.label} · ${r.photo} · ${r.size}`;
      caption.appendChild(title);
      const list = document.createElement("dl");
      for (const [k, v] of Object.entries(r.settings)) {
        const dt = document.createElement("dt");
        dt.textContent = k;
        const dd = document.createElement("dd");
        dd.textContent = v === null ? "—" : String(v);
        if (JSON.stringify(v) !== JSON.stringify(first[k])) dd.className = "differs";
        list.append(dt, dd);
      }
      caption.appendChild(list);
      const download = document.createElement("a");
      download.href = r.url;
      download.download = `dreamkit-studio-${r.id}.png`;
      download.className = "download";
      download.textContent = "download PNG";
      const reuse = document.createElement("button");
      reuse.type = "button";
      reuse.textContent = "use these settings";
      reuse.addEventListener("click", () => fillSettings(r.settings));
      caption.append(download, " ", reuse);
      card.appendChild(caption);
      gallery.appendChild(card);
    }
  } catch (error) {
    say(error.message);
  }
}

// ---------------------------------------------------------------- start

async function start() {
  try {
    state.info = await api("/api/info");
  } catch (error) {
    say(`the studio does not answer: ${error.message}`);
    return;
  }
  const info = state.info;
  $("device").textContent = `on ${info.device}; a job may take ${info.limits.budget} M pixel-steps`;
  $("keep").textContent = info.limits.keep;
  for (const m of info.models) option($("model"), m.spec, m.spec).title = m.description;
  for (const f of info.factories) option($("model"), f, `${f} (user code)`);
  for (const s of info.samples) option($("sample"), s.id, s.name);
  buildSettings(info.settings);
  $("photo-file").addEventListener("change", (e) => {
    if (e.target.files.length) uploadPhoto(e.target.files[0]);
  });
  $("sample").addEventListener("change", (e) => {
    const s = info.samples.find((x) => x.id === e.target.value);
    if (s) usePhoto(s);
  });
  $("model").addEventListener("change", (e) => useModel(e.target.value));
  $("model-use").addEventListener("click", () => {
    const spec = $("model-spec").value.trim();
    if (spec) useModel(spec);
  });
  $("layer").addEventListener("change", layerChanged);
  $("dream").addEventListener("click", startDream);
  $("stop").addEventListener("click", stopJob);
  $("grid-show").addEventListener("click", () => loadGrid(0));
  $("grid-prev").addEventListener("click", () =>
    loadGrid(Math.max(0, state.gridStart - info.limits.grid_page)));
  $("grid-next").addEventListener("click", () =>
    loadGrid(state.gridStart + info.limits.grid_page));
  window.addEventListener("pagehide", () => {
    if (state.job) fetch(`/api/job/${state.job}/cancel`, {method: "POST", headers: HEADERS,
                                                          keepalive: true});
  });
  await useModel(info.models[0].spec);
  await refreshGallery();
  document.body.dataset.ready = "1";
}

start();
