'use strict';
// node `ws` 8.x echo peer, with `bufferutil` (native masking; ws loads it by
// itself when it is installed beside it). node is single-threaded.
//
// No `path` option, so any path is answered; every text/binary message is
// sent back with the same kind (ws.send per message, ws's idiomatic echo;
// ws sets TCP_NODELAY). Limits: 64 MiB messages (maxPayload; default
// 100 MiB); permessage-deflate off (the server default); no client
// tracking (not needed).

const path = require('path');
const { listenAddr, nodeModules, requirePeerPackage, MAX_MESSAGE } = require('./common.js');

const PEER = 'peer-ws';
const { host, port } = listenAddr(PEER);
const { WebSocketServer } = requirePeerPackage(PEER, 'ws');
// Fail loudly rather than measure ws without its native helper.
requirePeerPackage(PEER, 'bufferutil');
const wsVersion = require(path.join(nodeModules(), 'ws', 'package.json')).version;

const wss = new WebSocketServer({
  host,
  port,
  maxPayload: MAX_MESSAGE,
  perMessageDeflate: false,
  clientTracking: false,
});

wss.on('connection', (ws) => {
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => {
    ws.send(data, { binary: isBinary });
  });
});
wss.on('listening', () => {
  console.error(`${PEER}: ws ${wsVersion} listening on ${host}:${port}`);
});
wss.on('error', (e) => {
  console.error(`${PEER}: cannot listen on ${host}:${port}: ${e.message}`);
  process.exit(1);
});
