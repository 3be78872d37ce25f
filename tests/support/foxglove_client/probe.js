// Connects to a Foxglove WebSocket server with Foxglove's own client (@foxglove/ws-protocol),
// subscribes to the given topics and prints one JSON summary of what arrived.
//   node probe.js ws://127.0.0.1:8765 SECONDS TOPIC... [--stall]
// --stall: subscribe, then stop reading the socket (a stuck client) until the end.
"use strict";
const { FoxgloveClient } = require("@foxglove/ws-protocol");
const WebSocket = require("ws");

const args = process.argv.slice(2);
const stall = args.includes("--stall");
const [url, seconds, ...topics] = args.filter((a) => a !== "--stall");
// foxglove-sdk servers (and foxglove_bridge >= 3) speak the same protocol under the name
// foxglove.sdk.v1; FoxgloveClient (>= 0.7.5) leaves the subprotocol to the WebSocket it is given.
const ws = new WebSocket(url, ["foxglove.sdk.v1", FoxgloveClient.SUPPORTED_SUBPROTOCOL]);
const client = new FoxgloveClient({ ws });
const channels = new Map(); // subscription id -> channel
const summary = { serverInfo: null, advertised: [], topics: {}, errors: [] };

function hasJpeg(bytes) {
  for (let i = 0; i + 2 < bytes.length; i++) {
    if (bytes[i] === 0xff && bytes[i + 1] === 0xd8 && bytes[i + 2] === 0xff) return true;
  }
  return false;
}

client.on("serverInfo", (info) => { summary.serverInfo = { name: info.name, capabilities: info.capabilities }; });
client.on("error", (e) => summary.errors.push(String(e && e.message ? e.message : e)));
client.on("advertise", (chans) => {
  for (const ch of chans) {
    summary.advertised.push(ch.topic);
    if (topics.includes(ch.topic)) {
      const id = client.subscribe(ch.id);
      channels.set(id, ch);
      summary.topics[ch.topic] = { encoding: ch.encoding, schemaName: ch.schemaName, count: 0, bytes: 0,
        jpeg: 0, first_ns: null, last_ns: null, json: null, text: "" };
    }
  }
  if (stall && channels.size) ws._socket.pause();
});
client.on("message", ({ subscriptionId, timestamp, data }) => {
  const ch = channels.get(subscriptionId);
  if (!ch) return;
  const t = summary.topics[ch.topic];
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  t.count += 1;
  t.bytes += bytes.length;
  const ns = Number(timestamp);
  t.first_ns = t.first_ns === null ? ns : t.first_ns;
  t.last_ns = ns;
  if (ch.encoding === "json") {
    t.json = JSON.parse(Buffer.from(bytes).toString("utf8"));
  } else {
    if (hasJpeg(bytes)) t.jpeg += 1;
    // Protobuf strings are plain UTF-8: keep the printable runs of the last message (frame names).
    t.text = Buffer.from(bytes).toString("latin1").replace(/[^\x20-\x7e]+/g, " ").slice(0, 4000);
  }
});
setTimeout(() => {
  process.stdout.write(JSON.stringify(summary) + "\n");
  ws.terminate();
  process.exit(0);
}, Number(seconds) * 1000);
