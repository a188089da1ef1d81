"""Benchmark: wall time and peak memory of one `aggregator run --once` over a locally served feed.

Serves a feed file (default: the 193-item CISA-shaped ICSMA feed, tests/fixtures/rss/cisa-icsma-all.xml)
from an aiohttp server on 127.0.0.1, runs `aggregator run --once` under /usr/bin/time -v in a fresh
state folder with the development watch list's devices, and prints the figures. Alerts go to stdout
(discarded), so delivery cost is printing only.

    .venv/bin/python bench/run_once.py [FEED.xml] [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
DEVICES = """
[[watch]]
name = "minimed-508"
manufacturer = "Medtronic"
models = ["MiniMed 508", "MMT-508"]

[[watch]]
name = "paradigm-523"
manufacturer = "Medtronic"
models = ["Paradigm Revel 523", "MMT-523"]
firmware = "2.5A"

[[watch]]
name = "alaris"
manufacturer = "BD"
models = ["Alaris 8000"]

[[watch]]
name = "intellivue"
manufacturer = "Philips"
models = ["IntelliVue MX40"]

[[watch]]
name = "carelink"
manufacturer = "Medtronic"
models = ["MyCareLink Patient Monitor"]
"""


def serve(body: bytes) -> int:
    loop = asyncio.new_event_loop()
    port: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/rss+xml")

    async def start() -> None:
        app = web.Application()
        app.router.add_get("/feed.xml", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    threading.Thread(target=loop.run_forever, daemon=True).start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    return port[0]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("feed", nargs="?", default=str(ROOT / "tests" / "fixtures" / "rss" / "cisa-icsma-all.xml"))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    body = Path(args.feed).read_bytes()
    port = serve(body)
    exe = Path(sys.executable).with_name("aggregator")
    walls, rss = [], []
    alerts = 0
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            config = Path(tmp) / "config.toml"
            config.write_text(
                f'[daemon]\nstate = "s.sqlite3"\n[[source]]\nname = "icsma"\nkind = "rss"\n'
                f'url = "http://127.0.0.1:{port}/feed.xml"\n{DEVICES}'
            )
            start = time.perf_counter()
            proc = subprocess.run(
                ["/usr/bin/time", "-v", str(exe), "run", "--once", "--config", str(config)],
                capture_output=True,
                text=True,
                check=False,
            )
            walls.append(time.perf_counter() - start)
            if proc.returncode != 0:
                sys.exit(f"run --once failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
            rss.append(int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1)))  # type: ignore[union-attr]
            alerts = proc.stdout.count("Sources that carried this event:")
    items = body.count(b"<item>")
    print(f"feed: {args.feed} ({items} items, {len(body)} bytes); {args.runs} runs, fresh state each")
    print(f"alerts per run: {alerts}")
    print(f"wall time: median {statistics.median(walls):.3f} s, min {min(walls):.3f} s, max {max(walls):.3f} s")
    print(f"peak RSS: median {statistics.median(rss) / 1024:.1f} MiB, max {max(rss) / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
