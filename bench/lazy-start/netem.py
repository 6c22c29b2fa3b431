#!/usr/bin/env python3
"""A TCP proxy that makes loopback look like a network: a latency on every request and one
shared bandwidth for all connections (a link, not a per-connection cap).

    netem.py --listen PORT --upstream PORT [--latency-ms 5] [--mbit 200] [--ready FILE]

Latency: every time a client sends bytes (an HTTP request: the daemon and curl send a GET and
wait for its answer, no pipelining), they are held for --latency-ms before they go upstream, so
the first byte of each answer comes one round trip later, as nydus's benchmark injects 5 ms per
GET. Bandwidth: the answers of all connections share one virtual link of --mbit (0: unlimited);
each piece is delivered when the link would have finished sending it, in arrival order.
nginx's limit_rate would cap each connection alone, so four connections would get four links.

Prints nothing; touches --ready once it listens. Runs until killed. Thread: one asyncio loop.

    netem.py --probe PORT --path /blob [--size 4096] [--count 40]

Probe: --count GETs of --size bytes at spread offsets of --path, one at a time on one keep-alive
connection; prints the median seconds per request: the round trip the link really has (the
latency, the proxy's and the server's own time, the bytes at the bandwidth), which a perfect
fetcher pays as well.
"""
import argparse
import asyncio
import http.client
import statistics
import pathlib
import time

PIECE = 64 * 1024


class Link:
    """One shared virtual wire: transmission is serialised in the order pieces arrive."""

    def __init__(self, mbit):
        self.rate = mbit * 1e6 / 8 if mbit > 0 else 0.0  # bytes per second; 0: unlimited
        self.free_at = 0.0

    def done_at(self, n):
        now = time.monotonic()
        if self.rate == 0:
            return now
        start = max(now, self.free_at)
        self.free_at = start + n / self.rate
        return self.free_at


async def pump_requests(reader, writer, latency):
    try:
        while True:
            data = await reader.read(PIECE)
            if not data:
                break
            if latency > 0:
                await asyncio.sleep(latency)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        try:
            writer.write_eof()
        except (OSError, RuntimeError):
            pass


async def pump_answers(reader, writer, link):
    try:
        while True:
            data = await reader.read(PIECE)
            if not data:
                break
            delay = link.done_at(len(data)) - time.monotonic()
            # asyncio's timers have a millisecond's grain (epoll): sleeping 0.16 ms for a 4 KiB
            # piece at 200 Mbit/s took over a millisecond, which added up to more than the link's
            # latency per request. So a piece may go up to a millisecond early; the link's clock
            # (free_at) still spaces everything at the bandwidth, so a backlog is still waited for.
            if delay > 0.001:
                await asyncio.sleep(delay - 0.001)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def serve(args):
    link = Link(args.mbit)
    latency = args.latency_ms / 1000.0

    async def on_client(creader, cwriter):
        try:
            ureader, uwriter = await asyncio.open_connection("127.0.0.1", args.upstream)
        except OSError:
            cwriter.close()
            return
        up = asyncio.create_task(pump_requests(creader, uwriter, latency))
        await pump_answers(ureader, cwriter, link)
        up.cancel()
        uwriter.close()

    server = await asyncio.start_server(on_client, "127.0.0.1", args.listen, reuse_address=True)
    if args.ready:
        pathlib.Path(args.ready).touch()
    async with server:
        await server.serve_forever()


def probe(args):
    conn = http.client.HTTPConnection("127.0.0.1", args.probe, timeout=30)
    conn.request("HEAD", args.path)
    r = conn.getresponse()
    r.read()
    size = int(r.getheader("Content-Length"))
    times = []
    for i in range(args.count):
        off = (size - args.size) * i // max(1, args.count - 1) // 4096 * 4096
        t0 = time.monotonic()
        conn.request("GET", args.path, headers={"Range": f"bytes={off}-{off + args.size - 1}"})
        r = conn.getresponse()
        body = r.read()
        times.append(time.monotonic() - t0)
        if r.status != 206 or len(body) != args.size:
            raise SystemExit(f"netem.py --probe: {r.status}, {len(body)} bytes")
    print(f"{statistics.median(times):.6f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probe", type=int)
    ap.add_argument("--path", default="/blob")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--count", type=int, default=40)
    ap.add_argument("--listen", type=int)
    ap.add_argument("--upstream", type=int)
    ap.add_argument("--latency-ms", type=float, default=0.0)
    ap.add_argument("--mbit", type=float, default=0.0)
    ap.add_argument("--ready")
    args = ap.parse_args()
    if args.probe:
        return probe(args)
    if args.listen is None or args.upstream is None:
        ap.error("--listen and --upstream, or --probe")
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
