#!/usr/bin/env python3
"""Interop peer for ringwire's permessage-deflate tests: python websockets 15.

  ws_peer.py server PARAMS_JSON
      Listens on 127.0.0.1 (ephemeral port), prints "PORT <n>", then for each
      connection prints "EXT <negotiated Sec-WebSocket-Extensions>" and echoes
      every message. Exits when stdin closes or after 60 s.

  ws_peer.py client URL PARAMS_JSON SIZES_JSON
      Connects offering permessage-deflate with PARAMS, sends for each size a
      JSON-like text message and a random (incompressible) binary message,
      checks every echo, closes with 1000, and prints one JSON line:
      {"extensions": "...", "echoed": N}. Exits non-zero on any mismatch.

PARAMS_JSON: {"server_no_context_takeover": bool, "client_no_context_takeover":
bool, "server_max_window_bits": int|null, "client_max_window_bits":
int|true|null}, all optional.
"""

import asyncio
import json
import random
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)

MAX = 64 * 1024 * 1024


def json_like(n: int, seed: int) -> str:
    rng = random.Random(seed)
    parts = []
    size = 0
    i = 0
    while size < n:
        item = json.dumps(
            {"id": i, "user": f"user{rng.randrange(1000)}", "price": rng.randrange(100000) / 100,
             "tags": ["alpha", "beta", "gamma"][: rng.randrange(4)], "ok": rng.random() < 0.5}
        )
        parts.append(item)
        size += len(item) + 1
        i += 1
    return ",".join(parts)[:n]


async def run_server(params: dict) -> None:
    factory = ServerPerMessageDeflateFactory(
        server_no_context_takeover=params.get("server_no_context_takeover", False),
        client_no_context_takeover=params.get("client_no_context_takeover", False),
        server_max_window_bits=params.get("server_max_window_bits"),
        client_max_window_bits=params.get("client_max_window_bits"),
    )

    async def echo(ws):
        print("EXT", ws.response.headers.get("Sec-WebSocket-Extensions", ""), flush=True)
        async for msg in ws:
            await ws.send(msg)

    async with serve(echo, "127.0.0.1", 0, compression=None, extensions=[factory],
                     max_size=MAX) as server:
        port = server.sockets[0].getsockname()[1]
        print("PORT", port, flush=True)
        loop = asyncio.get_running_loop()
        stdin_closed = loop.run_in_executor(None, sys.stdin.read)
        await asyncio.wait_for(stdin_closed, 60)


async def run_client(url: str, params: dict, sizes: list) -> None:
    factory = ClientPerMessageDeflateFactory(
        server_no_context_takeover=params.get("server_no_context_takeover", False),
        client_no_context_takeover=params.get("client_no_context_takeover", False),
        server_max_window_bits=params.get("server_max_window_bits"),
        client_max_window_bits=params.get("client_max_window_bits", True),
    )
    echoed = 0
    async with connect(url, compression=None, extensions=[factory], max_size=MAX,
                       open_timeout=10, close_timeout=5) as ws:
        ext = ws.response.headers.get("Sec-WebSocket-Extensions", "")
        for i, n in enumerate(sizes):
            text = json_like(n, i)
            data = random.Random(1000 + i).randbytes(n)
            for msg in (text, data):
                await ws.send(msg)
                got = await asyncio.wait_for(ws.recv(), 20)
                if got != msg:
                    print(json.dumps({"error": f"echo of a {type(msg).__name__} of {n} bytes differs"}))
                    sys.exit(1)
                echoed += 1
    print(json.dumps({"extensions": ext, "echoed": echoed}))


def main() -> None:
    if sys.argv[1] == "server":
        asyncio.run(run_server(json.loads(sys.argv[2])))
    elif sys.argv[1] == "client":
        asyncio.run(run_client(sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])))
    else:
        sys.exit(f"unknown mode {sys.argv[1]}")


if __name__ == "__main__":
    main()
