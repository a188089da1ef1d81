"""Sources: one module per kind of feed. This module maps a configured kind to its poller."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace

from aggregator.config import SourceConfig
from aggregator.errors import SourceError
from aggregator.models import Advisory, FeedState, PollResult, SourceKind
from aggregator.sources.csaf_feed import poll_csaf
from aggregator.sources.http import Fetcher, TransientError
from aggregator.sources.openfda_api import poll_openfda
from aggregator.sources.page import poll_page
from aggregator.sources.rss import poll_rss

log = logging.getLogger(__name__)

Poller = Callable[[SourceConfig, Fetcher, FeedState], Awaitable[PollResult]]

POLLERS: dict[SourceKind, Poller] = {
    SourceKind.RSS: poll_rss,
    SourceKind.CSAF: poll_csaf,
    SourceKind.OPENFDA: poll_openfda,
    SourceKind.PAGE: poll_page,
}


async def poll_source(source: SourceConfig, fetcher: Fetcher, state: FeedState) -> tuple[PollResult, float | None]:
    """Poll one source; never raises for a source failure. Returns the result and any Retry-After."""
    poller = POLLERS.get(source.kind)
    if poller is None:
        return PollResult(source.name, error=f'source kind "{source.kind}" is not supported yet'), None
    try:
        result = await poller(source, fetcher, state)
    except TransientError as exc:
        return PollResult(source.name, error=str(exc)), exc.retry_after
    except SourceError as exc:
        return PollResult(source.name, error=str(exc)), None
    except Exception as exc:  # a bug in one parser must cost that source, not every source
        log.exception("source %s: unexpected error while polling", source.name)
        return PollResult(source.name, error=f"internal error: {exc.__class__.__name__}: {exc}"), None
    if source.include or source.exclude:
        kept = keep_wanted(result.advisories, source.include, source.exclude)
        result = replace(result, advisories=kept)
    return result, None


def keep_wanted(advisories: Sequence[Advisory], include: Sequence[str], exclude: Sequence[str]) -> tuple[Advisory, ...]:
    """Per-source keyword filters (MedWatch and MHRA mix drugs and devices); case-insensitive."""
    wanted = [w.lower() for w in include]
    unwanted = [w.lower() for w in exclude]
    kept = []
    for adv in advisories:
        text = f"{adv.title}\n{adv.summary}".lower()
        if wanted and not any(w in text for w in wanted):
            continue
        if any(w in text for w in unwanted):
            continue
        kept.append(adv)
    return tuple(kept)
