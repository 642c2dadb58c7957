"""Structured logs with request ids (JSON lines, or a human format for a terminal), and the
Prometheus metrics the kernel exports."""

from __future__ import annotations

import json
import logging
import re
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge, Histogram

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
# What a log call may add with `extra=`, shown by either format.
LOG_FIELDS = ("method", "path", "status", "duration_ms", "org")

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# The route label of a request no route matched: its path is the client's to choose.
UNMATCHED = "unmatched"
HTTP_REQUESTS = Counter(
    "concord_http_requests_total",
    "HTTP requests answered, by method, route template and status class",
    ["service", "method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "concord_http_request_duration_seconds", "HTTP request latency", ["service", "method", "route"]
)
EVENTS_APPENDED = Counter("concord_events_appended_total", "Events committed", ["service"])
RELAY_PUBLISHED = Counter("concord_relay_published_total", "Events published to NATS", ["service"])
RELAY_LAG = Gauge(
    "concord_relay_lag_seconds", "Age of the newest event the relay published", ["service"]
)
RELAY_HELD_BACK = Gauge(
    "concord_relay_held_back_seconds",
    "How long committed events have waited for an older open transaction (0: not waiting)",
    ["service"],
)
PROJECTION_APPLIED = Counter(
    "concord_projection_events_total", "Events applied by a projection", ["service", "projection"]
)
PROJECTION_LAG = Gauge(
    "concord_projection_lag_seconds",
    "Age of the last event a projection applied when it applied it",
    ["service", "projection"],
)
PROJECTION_PENDING = Gauge(
    "concord_projection_pending_events",
    "Events in the stream the projection has not applied yet",
    ["service", "projection"],
)
PROJECTION_PARKED = Counter(
    "concord_projection_parked_total",
    "Messages a projection set aside: unreadable, foreign, invalid, or ahead of their stream",
    ["service", "projection", "reason"],
)

REACTION_HANDLED = Counter(
    "concord_reaction_events_total", "Events a reaction handled", ["service", "reaction"]
)
TIMERS_FIRED = Counter("concord_timers_fired_total", "Timers fired", ["service", "timer"])
TIMERS_PARKED = Counter(
    "concord_timers_parked_total", "Timers parked after failing every attempt", ["service"]
)
WORK_PARKED = Gauge(
    "concord_parked_work",
    "Reaction events, timers and projection messages parked, awaiting an operator",
    ["service", "kind"],
)


def record_http_request(service: str, method: str, route: str, status: int, elapsed: float) -> None:
    """Count an answered request under labels from closed sets only: the client chooses the
    method and the path, so either one as a label would let anyone add series (and memory,
    and scrape time) without bound. `route` is a route's template or UNMATCHED."""
    method = method if method in HTTP_METHODS else "other"
    HTTP_REQUESTS.labels(service, method, route, f"{status // 100}xx").inc()
    HTTP_LATENCY.labels(service, method, route).observe(elapsed)


# W3C Trace Context (level 1): version-traceid-parentid-flags in lower-case hex.
TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")


def valid_traceparent(headers: list[str]) -> str | None:
    """The trace context a request's `traceparent` headers give, or None when they give no
    valid one: nothing else may travel into the events, whose envelopes are kept for good.
    Version ff and all-zero ids are invalid; version 00 is exactly its 55 characters; a
    later version is read as far as this one defines it, up to a dash (and kept so)."""
    if len(headers) != 1:
        return None  # none, or several: W3C counts several as none
    value = headers[0]
    match = TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_id, parent_id = match.groups()
    rest = value[match.end() :]
    if version == "ff" or trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    if rest and (version == "00" or not rest.startswith("-")):
        return None
    return match.group(0)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key in LOG_FIELDS:
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class HumanFormatter(logging.Formatter):
    """One line a person can read: `time level service message key=value ...` (local time,
    to the millisecond), with a traceback below it when there is one."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        at = datetime.fromtimestamp(record.created).strftime("%H:%M:%S.%f")[:-3]
        fields = {key: getattr(record, key) for key in LOG_FIELDS if hasattr(record, key)}
        request_id = request_id_var.get()
        if request_id:
            fields["request_id"] = request_id
        pairs = "".join(f" {key}={_quoted(value)}" for key, value in fields.items())
        line = f"{at} {record.levelname:<7} {self.service:<13} {record.getMessage()}{pairs}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def _quoted(value: object) -> str:
    text = str(value)
    return json.dumps(text) if not text or any(c.isspace() or c == '"' for c in text) else text


LOG_FORMATS: dict[str, type[JsonFormatter | HumanFormatter]] = {
    "json": JsonFormatter,
    "human": HumanFormatter,
}


def configure_logging(service: str, level: str = "INFO", log_format: str = "json") -> None:
    """Every log line to stdout, as JSON (production) or `human` (a terminal, `make run`)."""
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(LOG_FORMATS[log_format](service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = name != "uvicorn.access"
