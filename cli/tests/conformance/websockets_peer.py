#!/usr/bin/env python3
"""Third-party peers for the `ringwire conformance` tests: python
websockets (the interop venv, tests/interop/install.sh).

    websockets_peer.py server PORT       echo server on 127.0.0.1 (0: a free
                                         port; prints "listening PORT")
    websockets_peer.py client URL AGENT  the fuzzingserver protocol: getCaseCount,
                                         runCase for each case (echo), updateReports
"""
import asyncio
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


async def echo(ws):
    try:
        async for msg in ws:
            await ws.send(msg)
    except ConnectionClosed:
        pass


async def server(port):
    async with serve(echo, "127.0.0.1", port, max_size=None) as srv:
        print("listening", srv.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()


async def client(url, agent):
    async with connect(f"{url}/getCaseCount") as ws:
        count = int(await ws.recv())
    for case in range(1, count + 1):
        try:
            async with connect(f"{url}/runCase?case={case}&agent={agent}", max_size=None) as ws:
                await echo(ws)
        except Exception as e:  # a case may fail the handshake or the framing
            print(f"case {case}: {e!r}", file=sys.stderr)
    async with connect(f"{url}/updateReports?agent={agent}") as ws:
        await ws.wait_closed()


if __name__ == "__main__":
    if sys.argv[1] == "server":
        asyncio.run(server(int(sys.argv[2])))
    else:
        asyncio.run(client(sys.argv[2], sys.argv[3]))
