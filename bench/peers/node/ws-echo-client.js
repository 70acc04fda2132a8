'use strict';
// An echo load generator that is not ringwire's: node `ws` 8.x as the
// client (with bufferutil for masking). Opens CONNS connections to URL,
// keeps one message of SIZE bytes (binary) in flight on each, checks the
// length of every echo, and after WARMUP then DURATION seconds prints one
// JSON line: {"msgs_per_sec": …, "msgs": …, "secs": …, "errors": …}.
//
//   node ws-echo-client.js URL CONNS SIZE DURATION [WARMUP=1]
//
// Loopback only; stops by itself.

const { requirePeerPackage } = require('./common.js');

const PEER = 'ws-echo-client';
const WebSocket = requirePeerPackage(PEER, 'ws');
requirePeerPackage(PEER, 'bufferutil');

const [url, conns, size, duration, warmup = '1'] = process.argv.slice(2);
if (!url || !conns || !size || !duration) {
  console.error('usage: ws-echo-client.js URL CONNS SIZE DURATION [WARMUP]');
  process.exit(2);
}
const payload = Buffer.alloc(Number(size), 0x61);
let counting = false;
let msgs = 0;
let errors = 0;
const sockets = [];
for (let i = 0; i < Number(conns); i++) {
  const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 << 20 });
  ws.binaryType = 'nodebuffer';
  ws.on('open', () => ws.send(payload));
  ws.on('message', (data) => {
    if (data.length !== payload.length) errors++;
    if (counting) msgs++;
    ws.send(payload);
  });
  ws.on('error', () => { errors++; });
  sockets.push(ws);
}
setTimeout(() => {
  counting = true;
  const t0 = process.hrtime.bigint();
  setTimeout(() => {
    counting = false;
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    console.log(JSON.stringify({ msgs_per_sec: msgs / secs, msgs, secs, errors }));
    for (const ws of sockets) ws.terminate();
    process.exit(0);
  }, Number(duration) * 1000);
}, Number(warmup) * 1000);
