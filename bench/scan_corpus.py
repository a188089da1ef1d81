"""Benchmark: read, fold and match the whole shared corpus, as `aggregator scan` does, and print figures.

    .venv/bin/python bench/scan_corpus.py [CORPUS_DIR] [--watch ../shared/eval/dev-watch.toml] [--runs N]

Prints how many advisories each kind yields, how many files were skipped or unreadable, and the
time of each stage (median over runs). Matching uses the given watch list.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter
from pathlib import Path

from aggregator.config import load_config
from aggregator.dedup import event_matches, fold
from aggregator.match import load_aliases, match_all
from aggregator.sources.files import read_advisory_file, walk

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus", nargs="?", default=str(ROOT.parent / "shared" / "corpus"))
    parser.add_argument("--watch", default=str(ROOT.parent / "shared" / "eval" / "dev-watch.toml"))
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    config = load_config(Path(args.watch), check_targets=False)
    aliases = load_aliases(config.aliases)
    timings: dict[str, list[float]] = {"read+parse": [], "fold": [], "match": [], "total": []}
    for _ in range(args.runs):
        t0 = time.perf_counter()
        reads = [read_advisory_file(p) for p in walk([Path(args.corpus)])]
        advisories = [a for r in reads for a in r.advisories]
        t1 = time.perf_counter()
        events = fold(advisories, aliases)
        t2 = time.perf_counter()
        matches = match_all(advisories, config.watch, aliases)
        lines = event_matches(events, matches)
        t3 = time.perf_counter()
        for key, value in (("read+parse", t1 - t0), ("fold", t2 - t1), ("match", t3 - t2), ("total", t3 - t0)):
            timings[key].append(value)
    by_kind = Counter(a.kind.value for a in advisories)
    files = Counter("unreadable" if r.error else "skipped" if r.skipped else r.kind.value for r in reads)
    print(f"corpus: {args.corpus}")
    print(f"files: {sum(files.values())} ({', '.join(f'{k} {v}' for k, v in sorted(files.items()))})")
    print(f"advisories by kind: {', '.join(f'{k} {v}' for k, v in sorted(by_kind.items()))}; total {len(advisories)}")
    print(f"events: {len(events)}; (event, device) lines for {len(config.watch)} devices: {len(lines)}")
    for key, values in timings.items():
        print(f"{key}: median {statistics.median(values) * 1000:.0f} ms over {args.runs} runs")


if __name__ == "__main__":
    main()
