'use strict';
// The /chat/{room} semantics, the same for ringwire serve and the pub/sub
// peers (uWS, tokio-tungstenite):
//   node bench/peers/node/check-chat.js ws://127.0.0.1:PORT
// Three clients in room "a", one in room "b", two in the room "" (one on
// /chat, one on /chat/). A text message to a room reaches every member, the
// sender included, and no one else; 100 messages from one sender (one of
// them 70,000 bytes) reach every member of its room in order; a binary
// message is not relayed; /chat/x/y is refused with 400. Each client's
// messages are compared in full at the end. Uses the `ws` client that
// bench/peers/install.sh installs. Exits 0 if fine, within 10 s.

const { requirePeerPackage } = require('./common.js');

const WebSocket = requirePeerPackage('check-chat', 'ws');
const base = process.argv[2].replace(/\/+$/, '');
const N = 100;
const BIG = 50; // the index of the 70,000-byte message

function fail(why) {
  console.log(`chat FAILED: ${why}`);
  process.exit(1);
}
setTimeout(() => fail('timeout (10 s)'), 10000).unref();

function client(name, path) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(base + path);
    const c = { name, ws, got: [] };
    ws.on('open', () => resolve(c));
    ws.on('message', (data, isBinary) => c.got.push(isBinary ? '<binary>' : data.toString()));
    ws.on('error', (e) => reject(new Error(`${name} (${path}): ${e.message}`)));
  });
}

function refused(path) {
  return new Promise((resolve) => {
    const ws = new WebSocket(base + path);
    ws.on('unexpected-response', (_req, res) => { resolve(res.statusCode); ws.terminate(); });
    ws.on('open', () => { resolve('open'); ws.terminate(); });
    ws.on('error', (e) => resolve(e.message));
  });
}

function waitFor(pred, what) {
  return new Promise((resolve) => {
    const t = setInterval(() => {
      if (pred()) { clearInterval(t); resolve(); }
    }, 2);
    setTimeout(() => { if (!pred()) fail(`waiting for ${what}`); }, 5000).unref();
  });
}

const msg = (i) => (i === BIG ? `a2:${i}:` + 'x'.repeat(70000) : `a2:${i}`);
const short = (s) => (s.length > 40 ? `${s.slice(0, 40)}...(${s.length} bytes)` : s);

(async () => {
  const [a1, a2, a3, b1, e1, e2] = await Promise.all([
    client('a1', '/chat/a'), client('a2', '/chat/a'), client('a3', '/chat/a'),
    client('b1', '/chat/b'), client('e1', '/chat'), client('e2', '/chat/'),
  ]).catch((e) => fail(e.message));
  const a = [a1, a2, a3];

  a1.ws.send('a1:hello');
  await waitFor(() => a.every((c) => c.got.length >= 1), 'a1:hello at a1, a2, a3');
  b1.ws.send('b1:hello');
  e1.ws.send('e:hello');
  await waitFor(() => b1.got.length >= 1 && e1.got.length >= 1 && e2.got.length >= 1, 'the hellos of b and ""');

  a2.ws.send(Buffer.from([1, 2, 3]), { binary: true });
  for (let i = 0; i < N; i++) a2.ws.send(msg(i));
  await waitFor(() => a.every((c) => c.got.length >= 1 + N), `${N} messages from a2 at a1, a2, a3`);

  // Whatever would have leaked by now should have arrived by the end markers
  // and a short pause.
  b1.ws.send('b1:end');
  e2.ws.send('e:end');
  await waitFor(() => b1.got.length >= 2 && e1.got.length >= 2 && e2.got.length >= 2, 'the end markers');
  await new Promise((r) => setTimeout(r, 100));

  const wantA = ['a1:hello', ...Array.from({ length: N }, (_, i) => msg(i))];
  const want = new Map([
    [a1, wantA], [a2, wantA], [a3, wantA],
    [b1, ['b1:hello', 'b1:end']],
    [e1, ['e:hello', 'e:end']], [e2, ['e:hello', 'e:end']],
  ]);
  for (const [c, w] of want) {
    if (c.got.length !== w.length) fail(`${c.name} got ${c.got.length} messages, want ${w.length}: ${c.got.slice(0, 5).map(short)}`);
    const i = c.got.findIndex((m, i) => m !== w[i]);
    if (i >= 0) fail(`${c.name} message ${i} is ${short(c.got[i])}, want ${short(w[i])}`);
  }

  const status = await refused('/chat/x/y');
  if (status !== 400) fail(`/chat/x/y: ${status}, want a 400 refusal`);

  await Promise.all([...want.keys()].map((c) => new Promise((resolve) => {
    c.ws.on('close', resolve);
    c.ws.close(1000);
  })));
  console.log(`chat ok: rooms a (3), b (1), "" (/chat + /chat/); sender included; ${N} in order at 3 members; binary not relayed; /chat/x/y 400`);
  process.exit(0);
})().catch((e) => fail(e.stack));
