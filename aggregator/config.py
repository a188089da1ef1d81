"""Load and validate config.toml into frozen Config dataclasses. Every problem is reported at once."""

from __future__ import annotations

import hashlib
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aggregator.errors import ConfigError
from aggregator.models import SourceKind, WatchedDevice

DEFAULT_INTERVAL = 3600.0
NVD_URL = "https://services.nvd.nist.gov/rest/json/cves/2.0"
DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_BYTES = 20 * 1024 * 1024  # CISA's ROLIE feed is ~3 MB; leave room for growth
DEFAULT_BACKFILL = 365 * 86400.0
DEFAULT_MAX_ATTEMPTS = 10
DEFAULT_FAILURE_THRESHOLD = 3

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd])\s*$")
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 10**6, "gb": 10**9, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_FILE_VAR_RE = re.compile(r"\$\{file:([^}]+)\}")

# Keys each source kind accepts beyond the common ones.
_COMMON_SOURCE_KEYS = {"name", "kind", "url", "interval", "timeout", "max_bytes", "include", "exclude"}
_KIND_KEYS: dict[str, set[str]] = {
    SourceKind.RSS: set(),
    SourceKind.CSAF: {"path", "backfill", "overlap"},
    SourceKind.OPENFDA: {"backfill", "overlap", "search", "api_key", "limit"},
    SourceKind.PAGE: {"pattern"},
}


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One [[source]] table."""

    name: str
    kind: SourceKind
    url: str | None
    interval: float
    timeout: float = DEFAULT_TIMEOUT
    max_bytes: int = DEFAULT_MAX_BYTES
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    path: Path | None = None
    backfill: float = DEFAULT_BACKFILL
    overlap: float = 7 * 86400.0
    search: str | None = None
    api_key: str | None = field(default=None, repr=False)
    limit: int = 1000
    pattern: str | None = None

    @property
    def location(self) -> str:
        """Where the source reads from, safe to print (no api key: that is sent separately)."""
        return self.url or str(self.path)


@dataclass(frozen=True, slots=True)
class NotifyTarget:
    """One Apprise URL. `key` identifies it in the state file without storing the secret."""

    url: str = field(repr=False)
    masked: str

    @property
    def key(self) -> str:
        return hashlib.sha256(self.url.encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    """The [notify] table."""

    targets: tuple[NotifyTarget, ...] = ()
    skip_unaffected: bool = False  # alerts where the firmware is outside the range are still stored
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    failure_threshold: int = DEFAULT_FAILURE_THRESHOLD
    failure_repeat: float = 86400.0  # repeat "source is failing" this often while it lasts


@dataclass(frozen=True, slots=True)
class NvdConfig:
    """The optional [nvd] table: CVSS from NVD for CVEs named without a score. Lookups by CVE id only."""

    url: str = NVD_URL
    api_key: str | None = field(default=None, repr=False)
    spacing: float = 6.0  # NVD: 5 requests per rolling 30 s without a key
    max_per_cycle: int = 10


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated configuration."""

    path: Path
    state: Path
    interval: float
    sources: tuple[SourceConfig, ...]
    watch: tuple[WatchedDevice, ...]
    notify: NotifyConfig
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    nvd: NvdConfig | None = None


def parse_duration(value: object) -> float:
    """'45s', '30m', '6h', '1d' (or a number of seconds) as seconds; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION_RE.match(value)):
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    else:
        raise ValueError
    if seconds < 1:
        raise ValueError
    return seconds


def parse_size(value: object) -> int:
    """'5MB', '512KiB', or a number of bytes; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        size = value
    elif isinstance(value, str) and (m := _SIZE_RE.match(value)):
        size = int(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()])
    else:
        raise ValueError
    if size < 1024:
        raise ValueError
    return size


def mask_url(url: str) -> str:
    """An Apprise URL with its secrets hidden, for logs and CLI output."""
    import apprise  # imported lazily: apprise is slow to import and `scan` never needs it

    plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        scheme = url.split("://", 1)[0] if "://" in url else "?"
        return f"{scheme}://****"
    render: Any = plugin.url  # Apprise's plugins are not typed
    masked = str(render(privacy=True))
    return masked.split("?", 1)[0]


def default_config_path() -> Path:
    return Path(os.environ.get("AGGREGATOR_CONFIG") or "config.toml")


def load_config(path: Path, *, check_targets: bool = True) -> Config:
    """Read and validate `path`; raise ConfigError listing every problem."""
    label = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError([f"{label}: cannot read the file: {exc.strerror or exc}"]) from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{label}: not valid TOML: {exc}"]) from exc
    return _Validator(path, data, check_targets=check_targets).build()


class _Validator:
    """Walks the parsed TOML once, collecting every problem before giving up."""

    def __init__(self, path: Path, data: dict[str, Any], *, check_targets: bool) -> None:
        self.path = path
        self.data = data
        self.check_targets = check_targets
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.path}: {key}: {message}")

    def build(self) -> Config:
        self.unknown_keys("", self.data, {"daemon", "source", "watch", "notify", "aliases", "nvd"})
        daemon = self.table("daemon")
        self.unknown_keys("daemon.", daemon, {"state", "interval"})
        state = self.path_value("daemon.state", daemon.get("state", "aggregator.sqlite3"))
        interval = self.duration("daemon.interval", daemon.get("interval", "1h"), DEFAULT_INTERVAL)
        sources = self.sources(interval)
        watch = self.watch()
        notify = self.notify()
        aliases = self.aliases()
        nvd = self.nvd()
        if self.problems:
            raise ConfigError(self.problems)
        return Config(self.path, state, interval, sources, watch, notify, aliases, nvd)

    # -- helpers -----------------------------------------------------------------------------

    def unknown_keys(self, prefix: str, table: Mapping[str, Any], allowed: set[str]) -> None:
        for key in table:
            if key not in allowed:
                self.problem(f"{prefix}{key}", f"unknown key (expected one of: {', '.join(sorted(allowed))})")

    def table(self, key: str) -> dict[str, Any]:
        value = self.data.get(key, {})
        if not isinstance(value, dict):
            self.problem(key, "must be a table ([" + key + "])")
            return {}
        return value

    def array_of_tables(self, key: str) -> list[dict[str, Any]]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.problem(key, f"must be an array of tables ([[{key}]])")
            return []
        return value

    def expand(self, key: str, value: str) -> str:
        """${VAR} from the environment, ${file:NAME} from systemd's $CREDENTIALS_DIRECTORY."""

        def from_env(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in os.environ:
                self.problem(key, f"environment variable {name} is not set")
                return ""
            return os.environ[name]

        def from_file(m: re.Match[str]) -> str:
            name = m.group(1)
            folder = os.environ.get("CREDENTIALS_DIRECTORY")
            candidate = Path(folder) / name if folder and not Path(name).is_absolute() else Path(name)
            try:
                return candidate.read_text(encoding="utf-8").strip()
            except OSError as exc:
                self.problem(key, f"credential file {candidate} cannot be read: {exc.strerror or exc}")
                return ""

        return _VAR_RE.sub(from_env, _FILE_VAR_RE.sub(from_file, value))

    def string(self, key: str, value: object, *, required: bool = True) -> str | None:
        if value is None:
            if required:
                self.problem(key, "missing (expected a string)")
            return None
        if not isinstance(value, str) or (required and not value.strip()):
            self.problem(key, f"expected a non-empty string, got {_describe(value)}")
            return None
        return self.expand(key, value)

    def strings(self, key: str, value: object, *, required: bool = False) -> tuple[str, ...]:
        if value is None:
            if required:
                self.problem(key, "missing (expected a list of strings)")
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.problem(key, f"expected a list of non-empty strings, got {_describe(value)}")
            return ()
        if required and not value:
            self.problem(key, "expected at least one string")
        return tuple(self.expand(key, v) for v in value)

    def convert(self, key: str, value: object, default: Any, parse: Callable[[object], Any], what: str) -> Any:
        if value is None:
            return default
        try:
            return parse(self.expand(key, value) if isinstance(value, str) else value)
        except ValueError:
            self.problem(key, f"expected {what}, got {_describe(value)}")
            return default

    def duration(self, key: str, value: object, default: float) -> float:
        result: float = self.convert(
            key, value, default, parse_duration, 'a duration like "45s", "30m", "6h" or "1d" (at least 1s)'
        )
        return result

    def path_value(self, key: str, value: object) -> Path:
        text = self.string(key, value)
        if text is None:
            return self.path.parent / "aggregator.sqlite3"
        candidate = Path(text).expanduser()
        return candidate if candidate.is_absolute() else (self.path.parent / candidate).resolve()

    # -- sections ----------------------------------------------------------------------------

    def sources(self, default_interval: float) -> tuple[SourceConfig, ...]:
        result: list[SourceConfig] = []
        seen: set[str] = set()
        for index, table in enumerate(self.array_of_tables("source"), start=1):
            name = table.get("name")
            prefix = f"source[{index}]" if not isinstance(name, str) else f"source[{index}] ({name})"
            built = self.source(prefix, table, default_interval)
            if built is None:
                continue
            if built.name in seen:
                self.problem(f"{prefix}.name", f'"{built.name}" is used by another source (names must be unique)')
            seen.add(built.name)
            result.append(built)
        return tuple(result)

    def source(self, prefix: str, table: dict[str, Any], default_interval: float) -> SourceConfig | None:
        name = self.string(f"{prefix}.name", table.get("name"))
        kind_text = self.string(f"{prefix}.kind", table.get("kind"))
        kinds = [k.value for k in SourceKind]
        kind: SourceKind | None = None
        if kind_text is not None:
            if kind_text in kinds:
                kind = SourceKind(kind_text)
            else:
                self.problem(f"{prefix}.kind", f'unknown kind "{kind_text}" (expected one of: {", ".join(kinds)})')
        allowed = _COMMON_SOURCE_KEYS | (_KIND_KEYS[kind] if kind else set().union(*_KIND_KEYS.values()))
        self.unknown_keys(f"{prefix}.", table, allowed)
        url = self.string(f"{prefix}.url", table.get("url"), required=False)
        path_text = self.string(f"{prefix}.path", table.get("path"), required=False)
        path = None
        if path_text is not None:
            path = Path(path_text).expanduser()
            path = path if path.is_absolute() else (self.path.parent / path).resolve()
        if url is None and path is None:
            self.problem(f"{prefix}.url", "missing (expected the feed's http(s) URL)")
        elif url is not None and path is not None:
            self.problem(f"{prefix}.path", "give either url or path, not both")
        elif url is not None and not re.match(r"^https?://[^\s/]+", url):
            self.problem(f"{prefix}.url", f'expected an http:// or https:// URL, got "{url}"')
        interval = self.duration(f"{prefix}.interval", table.get("interval"), default_interval)
        timeout = self.duration(f"{prefix}.timeout", table.get("timeout"), DEFAULT_TIMEOUT)
        max_bytes: int = self.convert(
            f"{prefix}.max_bytes",
            table.get("max_bytes"),
            DEFAULT_MAX_BYTES,
            parse_size,
            'a size like "5MB" or a number of bytes (at least 1024)',
        )
        include = self.strings(f"{prefix}.include", table.get("include"))
        exclude = self.strings(f"{prefix}.exclude", table.get("exclude"))
        backfill = self.duration(f"{prefix}.backfill", table.get("backfill"), DEFAULT_BACKFILL)
        overlap = self.duration(f"{prefix}.overlap", table.get("overlap"), 7 * 86400.0)
        search = self.string(f"{prefix}.search", table.get("search"), required=False)
        api_key = self.string(f"{prefix}.api_key", table.get("api_key"), required=False)
        limit = table.get("limit", 1000)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            self.problem(f"{prefix}.limit", f"expected a whole number from 1 to 1000, got {_describe(limit)}")
            limit = 1000
        pattern = self.string(f"{prefix}.pattern", table.get("pattern"), required=False)
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                self.problem(f"{prefix}.pattern", f"not a valid regular expression: {exc}")
        if kind is SourceKind.PAGE and pattern is None:
            self.problem(f"{prefix}.pattern", "missing (expected a regular expression picking bulletin links)")
        if name is None or kind is None:
            return None
        return SourceConfig(
            name=name,
            kind=kind,
            url=url,
            interval=interval,
            timeout=timeout,
            max_bytes=max_bytes,
            include=include,
            exclude=exclude,
            path=path,
            backfill=backfill,
            overlap=overlap,
            search=search,
            api_key=api_key,
            limit=limit,
            pattern=pattern,
        )

    def watch(self) -> tuple[WatchedDevice, ...]:
        result: list[WatchedDevice] = []
        seen: set[str] = set()
        for index, table in enumerate(self.array_of_tables("watch"), start=1):
            name_value = table.get("name")
            prefix = f"watch[{index}]" if not isinstance(name_value, str) else f"watch[{index}] ({name_value})"
            self.unknown_keys(f"{prefix}.", table, {"name", "manufacturer", "models", "firmware"})
            name = self.string(f"{prefix}.name", name_value)
            manufacturer = self.string(f"{prefix}.manufacturer", table.get("manufacturer"))
            models = self.strings(f"{prefix}.models", table.get("models"), required=True)
            firmware_value = table.get("firmware")
            if isinstance(firmware_value, int | float) and not isinstance(firmware_value, bool):
                self.problem(f"{prefix}.firmware", f'expected a string (write it in quotes: "{firmware_value}")')
                firmware_value = None
            firmware = self.string(f"{prefix}.firmware", firmware_value, required=False)
            if name is None or manufacturer is None or not models:
                continue
            if name in seen:
                self.problem(f"{prefix}.name", f'"{name}" is used by another watched device (names must be unique)')
            seen.add(name)
            result.append(WatchedDevice(name.strip(), manufacturer.strip(), models, (firmware or "").strip() or None))
        return tuple(result)

    def notify(self) -> NotifyConfig:
        table = self.table("notify")
        self.unknown_keys(
            "notify.", table, {"urls", "skip_unaffected", "max_attempts", "failure_threshold", "failure_repeat"}
        )
        targets: list[NotifyTarget] = []
        for i, url in enumerate(self.strings("notify.urls", table.get("urls")), start=1):
            masked = mask_url(url) if self.check_targets else url.split("://", 1)[0] + "://****"
            if self.check_targets and masked.endswith("://****"):
                self.problem(f"notify.urls[{i}]", f"not a notification URL Apprise understands ({masked})")
                continue
            targets.append(NotifyTarget(url, masked))
        skip = table.get("skip_unaffected", False)
        if not isinstance(skip, bool):
            self.problem("notify.skip_unaffected", f"expected true or false, got {_describe(skip)}")
            skip = False
        counts = {}
        for key, default in (("max_attempts", DEFAULT_MAX_ATTEMPTS), ("failure_threshold", DEFAULT_FAILURE_THRESHOLD)):
            value = table.get(key, default)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                self.problem(f"notify.{key}", f"expected a whole number of at least 1, got {_describe(value)}")
                value = default
            counts[key] = value
        repeat = self.duration("notify.failure_repeat", table.get("failure_repeat"), 86400.0)
        return NotifyConfig(tuple(targets), skip, counts["max_attempts"], counts["failure_threshold"], repeat)

    def nvd(self) -> NvdConfig | None:
        if "nvd" not in self.data:
            return None
        table = self.table("nvd")
        self.unknown_keys("nvd.", table, {"enabled", "url", "api_key", "spacing", "max_per_cycle"})
        enabled = table.get("enabled", True)
        if not isinstance(enabled, bool):
            self.problem("nvd.enabled", f"expected true or false, got {_describe(enabled)}")
        url = self.string("nvd.url", table.get("url"), required=False) or NVD_URL
        if not re.match(r"^https?://[^\s/]+", url):
            self.problem("nvd.url", f'expected an http:// or https:// URL, got "{url}"')
        api_key = self.string("nvd.api_key", table.get("api_key"), required=False)
        spacing = self.duration("nvd.spacing", table.get("spacing"), 0.6 if api_key else 6.0)
        most = table.get("max_per_cycle", 10)
        if isinstance(most, bool) or not isinstance(most, int) or most < 1:
            self.problem("nvd.max_per_cycle", f"expected a whole number of at least 1, got {_describe(most)}")
            most = 10
        return NvdConfig(url, api_key, spacing, most) if enabled is True else None

    def aliases(self) -> dict[str, tuple[str, ...]]:
        table = self.table("aliases")
        return {name: self.strings(f"aliases.{name}", forms, required=True) for name, forms in table.items()}


def _describe(value: object) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)
