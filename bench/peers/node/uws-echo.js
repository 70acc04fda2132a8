'use strict';
// uWebSockets.js v20 peer (npm `uwebsockets@3.0.6`, which ships the uWS.js
// v20 native binaries): node is single-threaded, uWS runs its own event loop
// (libuv-integrated) on node's main thread.
//
// Echo: ws('/*') answers any path but /chat; every text/binary message is
// sent back with the same kind. uWS corks the socket during the message
// handler, so all sends made while handling one read go out in one write:
// its built-in batching.
//
// Chat (pub/sub), as `ringwire serve`'s /chat/{room}: ws('/chat') and
// ws('/chat/*') (uWS's router prefers them to '/*'). The upgrade handler
// takes the room from the path (/chat and /chat/ are the room ""; a room
// name is at most 128 bytes without '/', otherwise 400) and the socket
// subscribes to the topic 'chat/' + room on open (uWS calls open when it
// writes the 101, so a client that has its 101 is subscribed). Every text
// message is published with app.publish(topic, message, false): the App's
// publish reaches every subscriber, the sender included (ws.publish would
// skip the sender). Binary messages are ignored, as ringwire's demo does.
// uWS v20 keeps the order of publishes (and of sends) per topic and socket;
// a publish copies the message once into the topic tree and each
// subscriber's pending messages are written in one corked write per loop
// iteration.
//
// Settings (both routes): 64 MiB messages; maxBackpressure 64 MiB (the
// 64 KiB default would make send() drop echoes of 1 MiB messages while the
// previous one is still buffered); closeOnBackpressureLimit false; no idle
// timeout (node's ws has none either); no compression (the default).
//
// A slow subscriber under these settings: what it does not read piles up
// in its socket's user-space buffer (one copy of each frame per socket)
// until that holds more than maxBackpressure (64 MiB); from then on, what
// is published to it is dropped until its buffer drains below the limit;
// it is not closed (closeOnBackpressureLimit false, no idle timeout). The
// publisher and the other subscribers are not held up. uWS calls the
// `dropped` handler once per batch of messages it drops for a subscriber,
// not once per message (measured: 959 calls for 29,393 lost 1 KiB
// messages), so the count reported on stderr (one line per second while it
// grows) is of drop events, a lower bound on the messages lost.

const { listenAddr, requirePeerPackage, MAX_MESSAGE } = require('./common.js');

const PEER = 'peer-uws';
const MAX_ROOM = 128;
const { host, port } = listenAddr(PEER);
const uWS = requirePeerPackage(PEER, 'uwebsockets');

const settings = {
  compression: uWS.DISABLED,
  maxPayloadLength: MAX_MESSAGE,
  maxBackpressure: MAX_MESSAGE,
  closeOnBackpressureLimit: false,
  idleTimeout: 0,
};

let dropped = 0; // calls of the `dropped` handler
let reported = 0;
setInterval(() => {
  if (dropped !== reported) {
    reported = dropped;
    console.error(`${PEER}: chat: dropped handler called ${dropped} times in all (subscribers over maxBackpressure; once per batch, not per message)`);
  }
}, 1000).unref();

const app = uWS.App();

const chat = {
  ...settings,
  upgrade: (res, req, context) => {
    const url = req.getUrl();
    const room = url === '/chat' ? '' : url.slice('/chat/'.length);
    if (Buffer.byteLength(room) > MAX_ROOM || room.includes('/')) {
      res.writeStatus('400 Bad Request').end(`a room name is at most ${MAX_ROOM} bytes, without '/'\n`);
      return;
    }
    res.upgrade(
      { topic: 'chat/' + room },
      req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'),
      context,
    );
  },
  open: (ws) => {
    ws.subscribe(ws.getUserData().topic);
  },
  message: (ws, message, isBinary) => {
    if (!isBinary) app.publish(ws.getUserData().topic, message, false);
  },
  dropped: () => {
    dropped++;
  },
};

app
  .ws('/chat', chat)
  .ws('/chat/*', chat)
  .ws('/*', {
    ...settings,
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
