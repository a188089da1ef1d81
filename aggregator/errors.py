"""The project's exception hierarchy: everything we raise on purpose is an AggregatorError."""

from __future__ import annotations


class AggregatorError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(AggregatorError):
    """The configuration file is unusable; `problems` holds one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class StateError(AggregatorError):
    """The state file is corrupt, of a newer schema, or not ours."""


class SourceError(AggregatorError):
    """A source could not be polled (network, HTTP status, block page, size cap...)."""


class ParseError(SourceError):
    """A body of a known kind could not be parsed."""


class BlockedError(SourceError):
    """A CDN answered with an HTML block/apology page instead of the feed."""


class DeliveryError(AggregatorError):
    """A notification target did not accept an alert."""
