'use strict';
// Shared by the node peers: the HOST:PORT argument and where the packages
// that bench/peers/install.sh installed live.

const path = require('path');

function listenAddr(peer) {
  const args = process.argv.slice(2);
  const m = args.length === 1 && /^\[?([^\]]*)\]?:(\d+)$/.exec(args[0]);
  if (!m) {
    console.error(`${peer}: expected exactly one argument HOST:PORT (e.g. 127.0.0.1:9001)`);
    process.exit(2);
  }
  return { host: m[1], port: Number(m[2]) };
}

function nodeModules() {
  const dir = process.env.RINGWIRE_PEERS_DIR ||
    path.join(process.env.HOME || '/root', '.cache', 'ringwire-peers');
  return path.join(dir, 'node', 'node_modules');
}

function requirePeerPackage(peer, name) {
  const where = path.join(nodeModules(), name);
  try {
    return require(where);
  } catch (e) {
    console.error(`${peer}: cannot load ${name} from ${where} (run bench/peers/install.sh first)\n${e}`);
    process.exit(1);
  }
}

// Largest message accepted, as for the Rust peers.
const MAX_MESSAGE = 64 * 1024 * 1024;

module.exports = { listenAddr, nodeModules, requirePeerPackage, MAX_MESSAGE };
