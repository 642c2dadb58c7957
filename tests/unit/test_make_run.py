"""What a person sees in `make run`'s terminal: the banner in two columns, and log lines
they can read (JSON stays the format for machines)."""

from __future__ import annotations

import json
import logging
import sys

from concord import embedded
from concord.observability import HumanFormatter, JsonFormatter, request_id_var


def test_the_banner_puts_every_address_in_one_column_whatever_the_names() -> None:
    at = embedded.Ports(0)
    rows = [("PostgreSQL", "postgresql://postgres@127.0.0.1:55432/concord")] + [
        (name, f"http://127.0.0.1:{port}") for name, port in at.services().items()
    ]
    lines = embedded.banner(rows)
    assert "trust-survey" in at.services()  # the longest name, which ran into its address
    starts = {line.index(what) for line, (_, what) in zip(lines, rows, strict=True)}
    assert len(starts) == 1
    [column] = starts
    for line, (name, _) in zip(lines, rows, strict=True):
        assert line.startswith(name)
        assert line[len(name) : column].strip() == "" and column - len(name) >= 2


def test_every_port_moves_by_the_offset() -> None:
    default, moved = embedded.Ports(0).every(), embedded.Ports(100).every()
    assert default["PostgreSQL"] == 55432 and default["scorecard"] == 8001
    assert {what: port + 100 for what, port in default.items()} == moved


def _record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("concord.http", logging.INFO, __file__, 1, message, (), None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_the_human_format_reads_as_time_level_service_message_and_fields() -> None:
    record = _record("request answered", method="GET", path="/alliances", status=200)
    token = request_id_var.set("req-1")
    try:
        line = HumanFormatter("scorecard").format(record)
    finally:
        request_id_var.reset(token)
    clock, level, service, rest = line.split(maxsplit=3)
    assert len(clock) == len("12:34:56.789") and clock[2] == clock[5] == ":"
    assert (level, service) == ("INFO", "scorecard")
    assert rest == "request answered method=GET path=/alliances status=200 request_id=req-1"
    assert not line.startswith("{")


def test_the_human_format_quotes_values_with_spaces_and_shows_the_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "concord", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    record.org = "acme corp"
    line = HumanFormatter("governance").format(record)
    first, *traceback = line.splitlines()
    assert first.endswith('failed org="acme corp"')
    assert traceback[0].startswith("Traceback") and traceback[-1] == "ValueError: boom"


def test_json_stays_the_default_format() -> None:
    from concord.settings import ServiceSettings

    assert ServiceSettings(jwt_secret="x" * 40).log_format == "json"
    entry = json.loads(JsonFormatter("scorecard").format(_record("hello", status=201)))
    assert entry["message"] == "hello" and entry["status"] == 201
