'use strict';
// What `ringwire load echo` does not check: that each echo comes back with
// the kind (text/binary) it was sent with, fragmented messages included,
// that pings are answered and that a close handshake completes.
//   node bench/peers/node/check-kinds.js ws://127.0.0.1:PORT/any/path
// Uses the `ws` client that bench/peers/install.sh installs. Exits 0 if fine.

const { requirePeerPackage } = require('./common.js');

const WebSocket = requirePeerPackage('check-kinds', 'ws');
const ws = new WebSocket(process.argv[2]);
const sent = [
  ['hello text', false],
  [Buffer.from([0, 1, 2, 255]), true],
  ['x'.repeat(70000), false],
  [Buffer.alloc(1 << 20, 7), true],
];
const got = [];
let pong = false;
let ok = false;
ws.on('open', () => {
  for (const [data, binary] of sent) ws.send(data, { binary });
  ws.send('frag', { fin: false });
  ws.send('mented', { fin: true });
  ws.ping('p');
});
ws.on('pong', () => { pong = true; });
ws.on('message', (data, isBinary) => {
  got.push([data, isBinary]);
  if (got.length === sent.length + 1) {
    ok = sent.every(([d, b], i) => got[i][1] === b && Buffer.compare(Buffer.from(d), got[i][0]) === 0) &&
      got[sent.length][1] === false && got[sent.length][0].toString() === 'fragmented';
    ws.close(1000);
  }
});
ws.on('close', (code) => {
  const pass = ok && pong && code === 1000;
  console.log(`kinds ok=${ok} pong=${pong} close=${code}`);
  process.exit(pass ? 0 : 1);
});
ws.on('error', (e) => { console.log(`error ${e.message}`); process.exit(1); });
setTimeout(() => { console.log('timeout'); process.exit(1); }, 10000);
