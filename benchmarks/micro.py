"""In-process microbenchmarks of our server's own Python work, without sockets.

The asyncio connection protocol (the same object a real server uses) is given a fake
transport that records writes; requests are fed to ``data_received`` as if they came off
the wire and the loop runs until the response is written. What is timed is everything the
server does per request or message: parsing, the driver, the application task, the
streams, serialising. The kernel's socket calls and the client are not in it, so numbers
are lower than wrk's and much steadier: use them to compare two versions of the code.

    python benchmarks/micro.py                       # every case on asyncio and uvloop
    python benchmarks/micro.py --case h1-httptools --loop uvloop --profile

It imports ``hypercorn`` from the current environment (the development one).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import pstats
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from apps import app

from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.asyncio.backend import AsyncioBackend
from hypercorn.asyncio.tcp_server import ConnectionProtocol
from hypercorn.config import Config
from hypercorn.driver.worker import WorkerState

GET = b"GET / HTTP/1.1\r\nHost: localhost:8000\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n"
WS_UPGRADE = (
    b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def ws_frame(payload: bytes) -> bytes:
    """A masked client text frame."""
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


class FakeSocket:
    family = 2


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.writes = 0
        self.waiter: asyncio.Future[None] | None = None
        self.target = 0
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {
            "socket": FakeSocket(),
            "peername": ("127.0.0.1", 50000),
            "sockname": ("127.0.0.1", 8000),
        }.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)
        self.writes += 1
        if self.waiter is not None and self.written >= self.target and not self.waiter.done():
            self.waiter.set_result(None)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _bench(case: str, n: int) -> float:
    loop = asyncio.get_running_loop()
    config = Config()
    config.http1_parser = "h11" if case.endswith("h11") else "httptools"
    config.keep_alive_max_requests = 10**9
    worker = WorkerState(ASGIWrapper(app), config, AsyncioBackend())
    protocol = ConnectionProtocol(worker, ssl=False)
    transport = FakeTransport()
    protocol.connection_made(transport)

    async def feed(data: bytes, size: int) -> None:
        """Feed ``data``; return once ``size`` more bytes were written."""
        transport.waiter = loop.create_future()
        transport.target = transport.written + size
        protocol.data_received(data)
        await transport.waiter

    if case.startswith("h2c"):
        batches = _h2c_batches(n // H2_STREAMS + 1)
        protocol.data_received(batches[0])
        await _settle(protocol)
        start = time.perf_counter()
        for batch in batches[1:]:
            protocol.data_received(batch)
            await _settle(protocol)
        elapsed = time.perf_counter() - start
        per = elapsed / ((len(batches) - 1) * H2_STREAMS)
    elif case.startswith("ws"):
        await feed(WS_UPGRADE, 1)
        burst = 16
        frames = ws_frame(b"x" * 32) * burst
        start = time.perf_counter()
        for _ in range(n // burst):
            await feed(frames, burst * 34)  # each echo: a 2-byte header and 32 bytes
        elapsed = time.perf_counter() - start
        per = elapsed / (n // burst * burst)
    else:
        await feed(GET, 1)
        start = time.perf_counter()
        for _ in range(n):
            await feed(GET, 1)
        elapsed = time.perf_counter() - start
        per = elapsed / n
    transport.closing = True
    protocol.connection_lost(None)
    return per * 1e6


H2_STREAMS = 32


@functools.cache
def _h2c_batches(count: int) -> list[bytes]:
    """Prior-knowledge HTTP/2 input: the preface, then ``count`` batches of
    ``H2_STREAMS`` GET requests, each with a WINDOW_UPDATE that returns the window the
    responses will use (so flow control never stalls)."""
    import h2.config
    import h2.connection

    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    batches = [client.data_to_send()]
    headers = [
        (":method", "GET"),
        (":path", "/"),
        (":scheme", "http"),
        (":authority", "localhost"),
    ]
    for _ in range(count):
        for _ in range(H2_STREAMS):
            client.send_headers(client.get_next_available_stream_id(), headers, end_stream=True)
        client.increment_flow_control_window(H2_STREAMS * 13)
        batches.append(client.data_to_send())
    return batches


async def _settle(protocol: ConnectionProtocol) -> None:
    """Run the loop until every application of the connection returned."""
    driver = protocol._driver
    assert driver is not None
    await asyncio.sleep(0)
    while driver.apps:  # noqa: ASYNC110 - polling each turn is the point: no event to wait on
        await asyncio.sleep(0)


CASES = ("h1-h11", "h1-httptools", "ws-httptools", "h2c")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default=",".join(CASES))
    parser.add_argument("--loop", default="asyncio,uvloop")
    parser.add_argument("-n", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    for loop_name in args.loop.split(","):
        for case in args.case.split(","):
            if loop_name == "uvloop":
                import uvloop

                factory = uvloop.new_event_loop
            else:
                factory = asyncio.new_event_loop
            results = []
            if case.startswith("h2c"):
                _h2c_batches(args.n // H2_STREAMS + 1)  # made once, outside the timing
            for _ in range(args.repeat):
                loop = factory()
                try:
                    if args.profile:
                        profiler = cProfile.Profile()
                        profiler.enable()
                    results.append(loop.run_until_complete(_bench(case, args.n)))
                    if args.profile:
                        profiler.disable()
                        stats = pstats.Stats(profiler)
                        stats.sort_stats(args.sort).print_stats(args.top)
                finally:
                    loop.close()
            best = min(results)
            print(
                f"{loop_name:8} {case:14} {best:7.1f} us/op  (runs: "
                + ", ".join(f"{r:.1f}" for r in results)
                + ")"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
