// Many websocket clients in one Node.js process, for bench/fanout.py.
//
//   node clients.mjs '<json options>'
//
// Options: url, count, tokens (one per client, or one for all; none: a bare server that needs
// no hello), sampleEvery (every n-th client parses its frames fully and records latencies; the
// others only read the frame's "seq" to count messages), concurrency (handshakes in flight),
// deflate (offer permessage-deflate, as browsers do), subscribe (the hello's "subscribe" object,
// e.g. {"compact_tracks": true, "compact_alerts": true}; none: the server's default subscription).
//
// Commands, one JSON line each on stdin: {"cmd":"mark"} starts a measurement window,
// {"cmd":"report"} prints the window's numbers as one JSON line on stdout, {"cmd":"close"}
// closes every connection and exits. Latencies are sparse histograms in 0.1 ms steps
// ({"<tenths of ms>": count}) so that the numbers of several processes merge exactly. Track
// latency counts "track" and "track_moved" messages alike (receive time - the track's time:
// data.time, or m[0] in epoch seconds). The parsing clients also add up the size of the first
// SIZED_PER_TYPE messages of each type in a window (typeBytes, typeSized), to show what a
// message of each type costs on the wire.

import { performance } from "node:perf_hooks";
import readline from "node:readline";
import WebSocket from "ws";

const options = JSON.parse(process.argv[2]);
const tokens = options.tokens ?? [];
const sampleEvery = Math.max(1, options.sampleEvery ?? 20);
const concurrency = options.concurrency ?? 100;
const subscribe = options.subscribe ?? null;
const SEQ = Buffer.from('"seq":');
const SIZED_PER_TYPE = 500;

const clients = [];
let window = newWindow();
let cpuMark = process.cpuUsage();
let wallMark = performance.now();

function newWindow() {
  return {
    frames: 0,
    bytes: 0,
    sampledFrames: 0,
    sampledMessages: 0,
    types: {},
    typeBytes: {},
    typeSized: {},
    alertMs: {},
    alertFromStateMs: {},
    trackMs: {},
    bareMs: {},
    closed: {},
    seqGaps: 0,
  };
}

function now() {
  return performance.timeOrigin + performance.now();
}

function record(histogram, ms) {
  const key = Math.max(0, Math.round(ms * 10));
  histogram[key] = (histogram[key] ?? 0) + 1;
}

function readSeq(data) {
  // '{"type":"batch","seq":123,...': the sequence number sits near the start of every frame.
  const at = data.indexOf(SEQ, 0);
  if (at < 0 || at > 48) return -1;
  let value = 0;
  for (let i = at + SEQ.length; i < data.length; i++) {
    const c = data[i];
    if (c < 48 || c > 57) break;
    value = value * 10 + (c - 48);
  }
  return value;
}

function onFrame(client, data) {
  const received = now();
  window.frames += 1;
  window.bytes += data.length;
  const seq = readSeq(data);
  if (seq >= 0) {
    if (client.markSeq === null) client.markSeq = seq;
    client.lastSeq = seq;
  }
  client.frames += 1;
  if (!client.sampled) return;
  const frame = JSON.parse(data.toString());
  window.sampledFrames += 1;
  if (frame.type === "bare") {
    record(window.bareMs, received - frame.time * 1000);
    return;
  }
  if (frame.type !== "batch") return;
  if (client.nextSeq !== null && frame.seq !== client.nextSeq) window.seqGaps += 1;
  client.nextSeq = frame.seq + frame.messages.length;
  for (const message of frame.messages) {
    window.sampledMessages += 1;
    window.types[message.type] = (window.types[message.type] ?? 0) + 1;
    if ((window.typeSized[message.type] ?? 0) < SIZED_PER_TYPE) {
      window.typeSized[message.type] = (window.typeSized[message.type] ?? 0) + 1;
      window.typeBytes[message.type] =
        (window.typeBytes[message.type] ?? 0) + Buffer.byteLength(JSON.stringify(message));
    }
    if (message.type === "alert" || message.type === "alert_update") {
      record(window.alertMs, received - Date.parse(message.data.alert.updated_at));
      if (message.data.updated_at) {
        record(window.alertFromStateMs, received - Date.parse(message.data.updated_at));
      }
    } else if (message.type === "alert_changed") {
      // a revision's changed fields (compact_alerts): the alert's updated_at changes with every
      // revision, the state's with every decision
      const alert = message.set.alert;
      if (alert && alert.updated_at) record(window.alertMs, received - Date.parse(alert.updated_at));
      if (message.set.updated_at) record(window.alertFromStateMs, received - Date.parse(message.set.updated_at));
    } else if (message.type === "track") {
      record(window.trackMs, received - Date.parse(message.data.time));
    } else if (message.type === "track_moved") {
      // m[0]: the track's time in epoch seconds (schemas.api.TRACK_MOVED_FIELDS); servers before
      // that format (--server-root of an older revision) sent data.time
      const time = message.m ? message.m[0] * 1000 : Date.parse(message.data.time);
      record(window.trackMs, received - time);
    }
  }
}

function open(index) {
  return new Promise((resolve) => {
    const client = {
      index,
      sampled: index % sampleEvery === 0,
      frames: 0,
      markSeq: null,
      lastSeq: null,
      nextSeq: null,
      open: false,
      closeCode: null,
    };
    const socket = new WebSocket(options.url, {
      perMessageDeflate: Boolean(options.deflate),
      skipUTF8Validation: true,
      maxPayload: 256 * 1024 * 1024,
      handshakeTimeout: 60_000,
    });
    client.socket = socket;
    let settled = false;
    const settle = (ok) => {
      if (!settled) {
        settled = true;
        resolve(ok);
      }
    };
    socket.on("open", () => {
      client.open = true;
      const token = tokens.length ? tokens[index % tokens.length] : null;
      if (token !== null) {
        const hello = { type: "hello", token };
        if (subscribe !== null) hello.subscribe = subscribe;
        socket.send(JSON.stringify(hello));
      }
      clients.push(client);
      settle(true);
    });
    socket.on("message", (data) => onFrame(client, data));
    socket.on("close", (code) => {
      if (client.open) {
        client.open = false;
        client.closeCode = code;
        window.closed[code] = (window.closed[code] ?? 0) + 1;
      }
      settle(false);
    });
    socket.on("error", (error) => {
      if (!client.open) {
        process.stderr.write(`client ${index}: ${error.message}\n`);
      }
      settle(false);
    });
  });
}

async function connectAll() {
  let next = 0;
  let failed = 0;
  const worker = async () => {
    while (next < options.count) {
      const index = (options.first ?? 0) + next++;
      if (!(await open(index))) failed += 1;
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, options.count) }, worker));
  emit({ event: "connected", open: clients.filter((c) => c.open).length, failed });
}

function emit(message) {
  process.stdout.write(JSON.stringify(message) + "\n");
}

function report() {
  const cpu = process.cpuUsage(cpuMark);
  const seconds = (performance.now() - wallMark) / 1000;
  let messages = 0;
  let silent = 0;
  for (const client of clients) {
    if (client.markSeq !== null && client.lastSeq !== null) messages += client.lastSeq - client.markSeq;
    if (client.open && client.frames === 0) silent += 1;
  }
  emit({
    event: "report",
    seconds,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    open: clients.filter((c) => c.open).length,
    sampledClients: clients.filter((c) => c.sampled && c.open).length,
    silent,
    messages,
    ...window,
  });
}

function mark() {
  window = newWindow();
  cpuMark = process.cpuUsage();
  wallMark = performance.now();
  for (const client of clients) {
    client.markSeq = null;
    client.lastSeq = null;
    client.frames = 0;
  }
  emit({ event: "marked" });
}

function closeAll() {
  for (const client of clients) {
    if (client.open) client.socket.terminate();
  }
  process.exit(0);
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const command = JSON.parse(line);
  if (command.cmd === "mark") mark();
  else if (command.cmd === "report") report();
  else if (command.cmd === "close") closeAll();
});
process.stdin.on("end", closeAll);

connectAll();
