"""Command line: argv in, exit code out. The only place that configures logging and maps errors to exit codes.

Exit codes: 0 success; 1 some source or delivery failed; 2 bad config or unusable state file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aggregator import __version__
from aggregator.config import Config, default_config_path, load_config
from aggregator.errors import ConfigError, StateError
from aggregator.models import Advisory, EventMatch

if TYPE_CHECKING:
    from aggregator.store import Store

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
log = logging.getLogger("aggregator")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    if not getattr(args, "command", None):
        parser.print_help(sys.stderr)
        return EXIT_CONFIG
    config_path = Path(getattr(args, "file", None) or args.config or default_config_path())
    try:
        config = load_config(config_path, check_targets=args.command in ("run", "notify-test", "check-config"))
        result: int = args.handler(args, config)
        return result
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return EXIT_CONFIG
    except StateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `aggregator scan ... | head`: the reader left; not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config", metavar="FILE", help="config file (default: $AGGREGATOR_CONFIG, else ./config.toml)"
    )
    common.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    parser = argparse.ArgumentParser(
        prog="aggregator",
        parents=[common],
        description="Watch medical-device security advisories and recalls; alert when one concerns your device.",
    )
    parser.add_argument("--version", action="version", version=f"aggregator {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("check-config", parents=[common], help="validate the config and print a summary")
    p.add_argument("file", nargs="?", metavar="FILE", help="config file (same as --config)")
    p.set_defaults(handler=cmd_check_config)

    p = sub.add_parser("run", parents=[common], help="run the daemon (or one cycle with --once)")
    p.add_argument("--once", action="store_true", help="poll every source, deliver due alerts, exit")
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("notify-test", parents=[common], help="send a test message to every target")
    p.set_defaults(handler=cmd_notify_test)

    p = sub.add_parser("scan", parents=[common], help="offline, read-only: match advisory files against the watch list")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="files or folders (searched recursively)")
    p.set_defaults(handler=cmd_scan)

    p = sub.add_parser("advisories", parents=[common], help="list stored advisories, newest first (JSON lines)")
    p.add_argument("--source", metavar="NAME", help="only this source")
    p.add_argument("--since", metavar="YYYY-MM-DD", type=_date_arg, help="published on or after this day")
    p.set_defaults(handler=cmd_advisories)

    p = sub.add_parser("sources", parents=[common], help="each source's last poll, outcome, items, next poll")
    p.set_defaults(handler=cmd_sources)

    p = sub.add_parser("alerts", parents=[common], help="queued alerts and their delivery state (JSON lines)")
    p.set_defaults(handler=cmd_alerts)
    return parser


def _date_arg(text: str) -> datetime:
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from exc


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Apprise logs each plugin's chatter at INFO; our own lines say what happened to each delivery.
    logging.getLogger("apprise").setLevel(logging.DEBUG if verbose else logging.WARNING)
    logging.getLogger("asyncio").setLevel(logging.WARNING)


# -- commands ------------------------------------------------------------------------------------


def cmd_check_config(args: argparse.Namespace, config: Config) -> int:
    print(f"config {config.path}: OK")
    print(f"state file: {config.state}")
    print(f"sources ({len(config.sources)}):")
    for s in config.sources:
        print(f"  {s.name} [{s.kind}] every {_human(s.interval)}: {s.location}")
    print(f"watched devices ({len(config.watch)}):")
    for d in config.watch:
        firmware = f", firmware {d.firmware}" if d.firmware else ""
        print(f"  {d.name}: {d.manufacturer} {', '.join(d.models)}{firmware}")
    targets = config.notify.targets
    print(f"notification targets ({len(targets)}):" if targets else "notification targets: none (alerts go to stdout)")
    for t in targets:
        print(f"  {t.masked}")
    return EXIT_OK


def cmd_run(args: argparse.Namespace, config: Config) -> int:
    from aggregator.daemon import Daemon
    from aggregator.store import Store

    store = Store.open(config.state)
    try:
        daemon = Daemon(config, store)
        if not args.once:
            asyncio.run(daemon.run_forever())
            return EXIT_OK
        report = asyncio.run(daemon.run_once())
        stuck = store.stuck_deliveries(config.notify.max_attempts)
    finally:
        store.close()
    for name, error in report.failed_sources:
        print(f"source {name}: {error}", file=sys.stderr)
    for failure in report.delivery_failures:
        print(f"delivery to {failure.label}: {failure.error}", file=sys.stderr)
    for alert_id, label, attempts, last_error in stuck:
        print(
            f"stuck: alert {alert_id} to {label} failed {attempts} times (last: {last_error}); "
            "kept and retried with back-off, see `aggregator alerts`",
            file=sys.stderr,
        )
    log.info(
        "cycle done: %d sources polled (%d failed), %d new or changed items, %d alerts queued, %d delivered",
        len(report.polled),
        len(report.failed_sources),
        report.new_items,
        report.alerts_queued,
        report.delivered,
    )
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_notify_test(args: argparse.Namespace, config: Config) -> int:
    from aggregator.notify import send_apprise

    if not config.notify.targets:
        print("no notification targets configured: alerts would be printed to stdout")
        return EXIT_OK
    failed = 0
    for target in config.notify.targets:
        error = asyncio.run(
            send_apprise(
                target,
                "aggregator test message",
                "This is a test from aggregator. If you can read it, alerts will reach you here.",
            )
        )
        print(f"{target.masked}: {'OK' if error is None else 'FAILED: ' + error}")
        failed += error is not None
    return EXIT_FAILED if failed else EXIT_OK


def cmd_scan(args: argparse.Namespace, config: Config) -> int:
    from aggregator.dedup import event_matches, fold
    from aggregator.match import load_aliases, match_all
    from aggregator.sources.files import read_advisory_file, walk

    advisories: list[Advisory] = []
    files = unreadable = skipped = 0
    for path in walk(list(args.paths)):
        files += 1
        read = read_advisory_file(path)
        if read.error is not None:
            unreadable += 1
            print(f"unreadable: {path}: {read.error}", file=sys.stderr)
        elif read.skipped:
            skipped += 1
        advisories.extend(read.advisories)
    aliases = load_aliases(config.aliases)
    folded = event_matches(fold(advisories, aliases), match_all(advisories, config.watch, aliases))
    for em in folded:
        print(json.dumps(scan_line(em), ensure_ascii=False))
    print(
        f"scanned {len(advisories)} advisories from {files} files ({unreadable} unreadable, {skipped} skipped), "
        f"{len(folded)} matches",
        file=sys.stderr,
    )
    return EXIT_OK


def scan_line(em: EventMatch) -> dict[str, Any]:
    """One `scan` output line (a public interface, documented in the README)."""
    primary = em.event.primary
    published = em.event.published
    return {
        "advisory": primary.display_id,
        "event": em.event.event_id,
        "source": primary.kind.value,
        "title": primary.title,
        "url": primary.url or next((a.url for a in em.event.members if a.url), None),
        "published": published.isoformat() if published else None,
        "device": em.device.name,
        "affected": em.affected,
        "why": em.why,
        "sources": [{"kind": a.kind.value, "id": a.display_id} for a in em.event.members],
    }


def cmd_advisories(args: argparse.Namespace, config: Config) -> int:
    with _read_state(config) as store:
        for adv in store.advisories(source=args.source, since=args.since):
            print(
                json.dumps(
                    {
                        "advisory": adv.display_id,
                        "source": adv.source,
                        "kind": adv.kind.value,
                        "title": adv.title,
                        "url": adv.url,
                        "published": adv.published.isoformat() if adv.published else None,
                        "updated": adv.updated.isoformat() if adv.updated else None,
                        "revision": adv.revision,
                        "cves": list(adv.cves),
                        "severity": adv.severity,
                        "cvss": adv.cvss_score,
                    },
                    ensure_ascii=False,
                )
            )
    return EXIT_OK


def cmd_sources(args: argparse.Namespace, config: Config) -> int:
    with _read_state(config) as store:
        for source in config.sources:
            st = store.feed_state(source.name)
            print(
                json.dumps(
                    {
                        "source": source.name,
                        "kind": source.kind.value,
                        "last_poll": st.last_poll.isoformat() if st.last_poll else None,
                        "last_success": st.last_success.isoformat() if st.last_success else None,
                        "outcome": st.outcome,
                        "error": st.error,
                        "items": st.items,
                        "stored": store.advisory_count(source.name),
                        "consecutive_failures": st.consecutive_failures,
                        "next_poll": st.next_poll.isoformat() if st.next_poll else None,
                    },
                    ensure_ascii=False,
                )
            )
    return EXIT_OK


def cmd_alerts(args: argparse.Namespace, config: Config) -> int:
    with _read_state(config) as store:
        for row in store.alert_report():
            print(json.dumps(row, ensure_ascii=False))
    return EXIT_OK


@contextmanager
def _read_state(config: Config) -> Iterator[Store]:
    """The existing state file for a reporting command (never created here)."""
    from aggregator.store import Store

    store = Store.open(config.state, create=False)
    try:
        yield store
    finally:
        store.close()


def _human(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
