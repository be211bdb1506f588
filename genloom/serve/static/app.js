// genloom playground: plain JavaScript against the server's own OpenAI-compatible API (no build step).
"use strict";

const $ = (id) => document.getElementById(id);
const models = {}; // id → model card from /v1/models
let controller = null; // aborts the running request (Stop button, new request)
const conversation = []; // chat messages so far: {role, content}

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

async function errorText(response) {
  try {
    const body = await response.json();
    return body.error ? body.error.message : response.statusText;
  } catch (e) {
    return response.status + " " + response.statusText;
  }
}

async function loadModels() {
  const response = await fetch("/v1/models", { headers: headers() });
  if (!response.ok) {
    setStatus("Could not list models: " + (await errorText(response)), true);
    return;
  }
  const select = $("model");
  const current = select.value;
  select.textContent = "";
  for (const card of (await response.json()).data) {
    models[card.id] = card;
    const option = document.createElement("option");
    option.value = card.id;
    option.textContent = `${card.id} (${card.kind}, ${card.family})`;
    select.appendChild(option);
  }
  if (current && models[current]) select.value = current;
  modelChanged();
  setStatus(`${Object.keys(models).length} model(s) ready.`);
}

function modelChanged() {
  const card = models[$("model").value];
  const maxTokens = $("max-tokens");
  if (card && card.context_length) {
    // the server clamps too; the field shows what the model can give (its context, less a prompt token)
    maxTokens.max = card.context_length - 1;
    if (Number(maxTokens.value) > card.context_length - 1) maxTokens.value = card.context_length - 1;
  } else {
    maxTokens.removeAttribute("max");
  }
  const labels = $("labels");
  labels.textContent = "";
  for (const name of (card && card.labels) || []) {
    const option = document.createElement("option");
    option.value = name;
    labels.appendChild(option);
  }
}

function pickModel(kind) {
  // keep the selected model if it fits the tab, else take the first that does
  const card = models[$("model").value];
  if (card && card.kind === kind) return card.id;
  const found = Object.values(models).find((m) => m.kind === kind);
  if (found) {
    $("model").value = found.id;
    modelChanged();
    return found.id;
  }
  setStatus(`No ${kind} model is served.`, true);
  return null;
}

function sampling() {
  const body = {
    temperature: Number($("temperature").value),
    top_p: Number($("top-p").value),
    max_tokens: Number($("max-tokens").value),
  };
  const topK = Number($("top-k").value);
  if (topK > 0) body.top_k = topK;
  if ($("seed").value !== "") body.seed = Number($("seed").value);
  return body;
}

// Read a Server-Sent Events stream, calling onChunk with each parsed `data:` object until [DONE].
async function readStream(response, onChunk) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data: ")) continue;
        const data = line.slice(6);
        if (data === "[DONE]") return;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        onChunk(chunk);
      }
    }
  }
}

async function post(path, body) {
  if (controller) controller.abort();
  controller = new AbortController();
  const response = await fetch(path, {
    method: "POST",
    headers: headers(),
    body: JSON.stringify(body),
    signal: controller.signal,
  });
  if (!response.ok) throw new Error(await errorText(response));
  return response;
}

function busy(on) {
  $("stop").disabled = !on;
  for (const id of ["generate", "send", "make-images"]) $(id).disabled = on;
}

async function run(task) {
  busy(true);
  const started = performance.now();
  try {
    await task();
    setStatus(`Done in ${((performance.now() - started) / 1000).toFixed(2)} s.`);
  } catch (e) {
    setStatus(e.name === "AbortError" ? "Stopped." : "Error: " + e.message, e.name !== "AbortError");
  } finally {
    busy(false);
    controller = null;
  }
}

function generate() {
  const model = pickModel("text");
  if (!model) return;
  const output = $("output");
  output.textContent = "";
  setStatus("Generating…");
  run(async () => {
    const body = { model, prompt: $("prompt").value, stream: true, ...sampling() };
    const response = await post("/v1/completions", body);
    await readStream(response, (chunk) => {
      for (const choice of chunk.choices) output.textContent += choice.text;
    });
  });
}

function addMessage(role, text) {
  const div = document.createElement("div");
  div.className = "message " + role;
  const who = document.createElement("strong");
  who.textContent = role + ": ";
  const content = document.createElement("span");
  content.textContent = text;
  div.append(who, content);
  $("messages").appendChild(div);
  return content;
}

function send() {
  const model = pickModel("text");
  const text = $("chat-input").value.trim();
  if (!model || !text) return;
  conversation.push({ role: "user", content: text });
  addMessage("user", text);
  $("chat-input").value = "";
  const reply = addMessage("assistant", "");
  setStatus("Generating…");
  run(async () => {
    const system = $("system").value.trim();
    const messages = system ? [{ role: "system", content: system }, ...conversation] : conversation;
    const response = await post("/v1/chat/completions", { model, messages, stream: true, ...sampling() });
    await readStream(response, (chunk) => {
      for (const choice of chunk.choices) reply.textContent += choice.delta.content || "";
    });
    conversation.push({ role: "assistant", content: reply.textContent });
  });
}

function makeImages() {
  const model = pickModel("image");
  if (!model) return;
  const grid = $("image-grid");
  grid.textContent = "";
  setStatus("Sampling images…");
  run(async () => {
    const body = { model, prompt: $("image-prompt").value, n: Number($("image-n").value) };
    if ($("seed").value !== "") body.seed = Number($("seed").value);
    const response = await post("/v1/images/generations", body);
    for (const [i, item] of (await response.json()).data.entries()) {
      const img = document.createElement("img");
      img.src = "data:image/png;base64," + item.b64_json;
      img.alt = `generated image ${i + 1}`;
      grid.appendChild(img);
    }
  });
}

function selectTab(tab) {
  for (const other of document.querySelectorAll('[role="tab"]')) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    $(other.getAttribute("aria-controls")).hidden = !selected;
  }
  $("settings").hidden = tab.id === "tab-image";
  pickModel(tab.id === "tab-image" ? "image" : "text");
}

function ctrlEnter(id, action) {
  $(id).addEventListener("keydown", (e) => {
    if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      action();
    }
  });
}

function init() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (e) => {
      // arrow keys move between tabs (WAI-ARIA tabs pattern)
      const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
      if (!step) return;
      const next = tabs[(i + step + tabs.length) % tabs.length];
      next.focus();
      selectTab(next);
    });
  });
  $("generate").addEventListener("click", generate);
  $("send").addEventListener("click", send);
  $("make-images").addEventListener("click", makeImages);
  $("stop").addEventListener("click", () => controller && controller.abort());
  $("clear-chat").addEventListener("click", () => {
    conversation.length = 0;
    $("messages").textContent = "";
  });
  $("model").addEventListener("change", modelChanged);
  $("api-key").addEventListener("change", loadModels);
  ctrlEnter("prompt", generate);
  ctrlEnter("chat-input", send);
  loadModels();
}

init();
