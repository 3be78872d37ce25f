// Connects to the fuse-ros viewer with Foxglove's protocol client (@foxglove/ws-protocol) and draws
// the camera, DIGIT and spectrogram JPEGs and a plot of the policy's commands and holds.
import FoxgloveClient from "@foxglove/ws-protocol/FoxgloveClient";
import { decodeCompressedImage, decodeJson, mimeType } from "./decode.js";

const params = new URLSearchParams(location.search);
const url = params.get("ws") || "ws://127.0.0.1:8765";
const PLOT_SECONDS = 30;

// channel topic -> <img> id
const IMAGES = {
  "/camera_primary/image": "img-camera_primary",
  "/camera_wrist/image": "img-camera_wrist",
  "/digit_left/image": "img-digit_left",
  "/digit_left/difference": "img-digit_left-difference",
  "/digit_right/image": "img-digit_right",
  "/digit_right/difference": "img-digit_right-difference",
  "/audio/spectrogram": "img-spectrogram",
};
const JSON_TOPICS = ["/policy/command", "/arm/status", "/world/task_state"];

// What arrived, for the stats line and for tests that read the page (window.quicklook).
const state = {
  url, connected: false, serverName: null, errors: [], advertised: [],
  received: {}, imagesShown: {}, lastCommand: null, lastArm: null, lastTask: null,
};
window.quicklook = state;

const $ = (id) => document.getElementById(id);
const bySubscription = new Map();
const commands = []; // {t, dx, dy, dz, gripper, hold}

function setConnection(text, ok) {
  const el = $("connection");
  el.textContent = text;
  el.className = ok ? "ok" : "bad";
}

function showImage(topic, bytes) {
  const img = decodeCompressedImage(bytes);
  const el = $(IMAGES[topic]);
  const blob = new Blob([img.data], { type: mimeType(img.format) });
  const next = URL.createObjectURL(blob);
  const previous = el.dataset.url;
  el.onload = () => {
    if (previous) URL.revokeObjectURL(previous);
    state.imagesShown[topic] = (state.imagesShown[topic] || 0) + 1;
    el.title = `${img.frameId} ${el.naturalWidth}x${el.naturalHeight}`;
  };
  el.onerror = () => {
    // A frame replaced by the next one before it loaded is not an error.
    if (el.dataset.url === next) state.errors.push(`${topic}: the browser could not decode the ${img.format} image`);
  };
  el.dataset.url = next;
  el.src = next;
}

function onJson(topic, value) {
  if (topic === "/policy/command") {
    state.lastCommand = value;
    commands.push({ t: performance.now() / 1000, dx: value.dx, dy: value.dy, dz: value.dz,
                    gripper: value.gripper, hold: value.hold });
    $("latency").textContent = value.latency_ms == null ? "" :
      `latency ${value.latency_ms.toFixed(0)} ms, tick ${value.tick_index}${value.hold ? `, hold: ${value.reason}` : ""}`;
  } else if (topic === "/arm/status") {
    state.lastArm = value;
    $("arm").textContent = `arm ${value.state}${value.hold_reason ? ` (${value.hold_reason})` : ""}, ` +
      `${value.commands_applied} applied / ${value.commands_rejected} rejected${value.estop_latched ? ", E-STOP" : ""}`;
  } else if (topic === "/world/task_state") {
    state.lastTask = value;
    $("task").textContent = `${value.task} seed ${value.seed} ep ${value.episode}: ${value.state}` +
      (value.time_left_s != null ? `, ${value.time_left_s.toFixed(1)} s left` : "");
  }
}

function drawPlot() {
  const canvas = $("plot");
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, now = performance.now() / 1000;
  while (commands.length && commands[0].t < now - PLOT_SECONDS) commands.shift();
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, w, h);
  const x = (t) => w - ((now - t) / PLOT_SECONDS) * w;
  // holds: red bands over the ticks that held
  ctx.fillStyle = "rgba(239, 80, 80, 0.35)";
  for (let i = 0; i < commands.length; i++) {
    if (!commands[i].hold) continue;
    const t1 = i + 1 < commands.length ? commands[i + 1].t : now;
    ctx.fillRect(x(commands[i].t), 0, Math.max(2, x(t1) - x(commands[i].t)), h);
  }
  // translation in mm on a symmetric axis, gripper (0..1) on the lower band
  const mm = commands.flatMap((c) => [c.dx, c.dy, c.dz]).map((v) => Math.abs(v * 1000));
  const range = Math.max(1, ...mm);
  const mid = h * 0.4;
  ctx.strokeStyle = "#333a46";
  ctx.beginPath(); ctx.moveTo(0, mid); ctx.lineTo(w, mid); ctx.stroke();
  ctx.fillStyle = "#8a93a3";
  ctx.fillText(`±${range.toFixed(1)} mm`, 4, 12);
  ctx.fillText("gripper", 4, h - 6);
  const series = [["dx", "#ef6b6b", (c) => mid - (c.dx * 1000 / range) * mid * 0.95],
                  ["dy", "#6fcf7f", (c) => mid - (c.dy * 1000 / range) * mid * 0.95],
                  ["dz", "#6fa8ff", (c) => mid - (c.dz * 1000 / range) * mid * 0.95],
                  ["gripper", "#f2c14e", (c) => h - 4 - c.gripper * (h * 0.18)]];
  series.forEach(([name, color, y], k) => {
    ctx.strokeStyle = color;
    ctx.beginPath();
    commands.forEach((c, i) => (i ? ctx.lineTo(x(c.t), y(c)) : ctx.moveTo(x(c.t), y(c))));
    ctx.stroke();
    ctx.fillStyle = color;
    ctx.fillText(name, w - 210 + k * 50, 12);
  });
}

function drawStats() {
  const lines = Object.entries(state.received).map(([t, n]) => `${t} ${n}`);
  $("stats").textContent = `${url}  ${state.serverName || ""}\nreceived: ${lines.join(" · ")}` +
    (state.errors.length ? `\nerrors: ${state.errors.slice(-3).join(" · ")}` : "");
  // The same as JSON in a hidden element, for whoever reads the page's DOM (tests, --dump-dom).
  $("state").textContent = JSON.stringify(state);
}

function connect() {
  // foxglove-sdk servers speak the protocol as foxglove.sdk.v1; older servers as foxglove.websocket.v1.
  const ws = new WebSocket(url, ["foxglove.sdk.v1", FoxgloveClient.SUPPORTED_SUBPROTOCOL]);
  const client = new FoxgloveClient({ ws });
  client.on("open", () => { state.connected = true; setConnection(`connected to ${url}`, true); });
  client.on("serverInfo", (info) => { state.serverName = info.name; });
  client.on("error", (e) => state.errors.push(String(e && e.message ? e.message : e)));
  client.on("close", () => {
    state.connected = false;
    bySubscription.clear();
    setConnection(`no viewer at ${url}; retrying`, false);
    setTimeout(connect, 2000);
  });
  client.on("advertise", (channels) => {
    for (const ch of channels) {
      state.advertised.push(ch.topic);
      const image = ch.topic in IMAGES && ch.encoding === "protobuf";
      const json = JSON_TOPICS.includes(ch.topic) && ch.encoding === "json";
      if (image || json) bySubscription.set(client.subscribe(ch.id), { topic: ch.topic, image });
    }
  });
  client.on("message", ({ subscriptionId, data }) => {
    const sub = bySubscription.get(subscriptionId);
    if (!sub) return;
    state.received[sub.topic] = (state.received[sub.topic] || 0) + 1;
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    try {
      if (sub.image) showImage(sub.topic, bytes);
      else onJson(sub.topic, decodeJson(bytes));
    } catch (e) {
      state.errors.push(`${sub.topic}: ${e.message}`);
    }
  });
}

setInterval(() => { drawPlot(); drawStats(); }, 200);
connect();
