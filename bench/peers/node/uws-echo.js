'use strict';
// uWebSockets.js v20 echo peer (npm `uwebsockets@3.0.6`, which ships the
// uWS.js v20 native binaries): node is single-threaded, uWS runs its own
// event loop (libuv-integrated) on node's main thread.
//
// ws('/*') answers any path; every text/binary message is sent back with the
// same kind. uWS corks the socket during the message handler, so all sends
// made while handling one read go out in one write: its built-in batching.
// Limits: 64 MiB messages; maxBackpressure 64 MiB (the 64 KiB default
// would make send() drop echoes of 1 MiB messages while the previous one
// is still buffered); no idle timeout (node's ws has none either); no
// compression (the default).

const { listenAddr, requirePeerPackage, MAX_MESSAGE } = require('./common.js');

const PEER = 'peer-uws';
const { host, port } = listenAddr(PEER);
const uWS = requirePeerPackage(PEER, 'uwebsockets');

uWS.App()
  .ws('/*', {
    compression: uWS.DISABLED,
    maxPayloadLength: MAX_MESSAGE,
    maxBackpressure: MAX_MESSAGE,
    closeOnBackpressureLimit: false,
    idleTimeout: 0,
    message: (ws, message, isBinary) => {
      ws.send(message, isBinary);
    },
  })
  .any('/*', (res) => {
    res.writeStatus('426 Upgrade Required').end('WebSocket echo peer\n');
  })
  .listen(host, port, (token) => {
    if (token) {
      console.error(`${PEER}: listening on ${host}:${port}`);
    } else {
      console.error(`${PEER}: cannot listen on ${host}:${port}`);
      process.exit(1);
    }
  });
