"""mongoeco's MongoDB-wire server as a benchmark process of its own (its CPU stays out of the
servers' numbers): prints its ``mongodb://`` URI, serves until stdin ends."""

from __future__ import annotations

import asyncio
import sys

from mongoeco.engines import MemoryEngine
from mongoeco.wire import AsyncMongoEcoProxyServer


async def serve() -> None:
    server = AsyncMongoEcoProxyServer(engine=MemoryEngine(), host="127.0.0.1", port=0)
    address = await server.start()
    print(address.uri, flush=True)
    try:
        await asyncio.to_thread(sys.stdin.read)  # until the benchmark closes our stdin
    finally:
        await server.close()


if __name__ == "__main__":
    asyncio.run(serve())
