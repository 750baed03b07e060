"""Logs are one JSON object a line with a stable event name and the extra fields."""

from __future__ import annotations

import logging

import orjson

from webhook.log import JsonFormatter


def _format(record: logging.LogRecord) -> dict[str, object]:
    parsed: dict[str, object] = orjson.loads(JsonFormatter().format(record))
    return parsed


def test_log_line_carries_event_and_extras() -> None:
    logger = logging.getLogger("webhook.test")
    record = logger.makeRecord(
        "webhook.test",
        logging.INFO,
        __file__,
        1,
        "admission.patched",
        (),
        None,
        extra={"namespace": "validators", "duration_ms": 0.4},
    )
    entry = _format(record)
    assert entry["event"] == "admission.patched"
    assert entry["level"] == "info"
    assert entry["namespace"] == "validators"
    assert entry["duration_ms"] == 0.4
    assert "msg" not in entry
    assert "args" not in entry


def test_log_exception_is_one_line() -> None:
    logger = logging.getLogger("webhook.test")
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logger.makeRecord(
            "webhook.test", logging.ERROR, __file__, 1, "admission.failed", (), sys.exc_info()
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: boom" in orjson.loads(line)["error"]


def test_log_unserialisable_extra_becomes_text() -> None:
    logger = logging.getLogger("webhook.test")
    record = logger.makeRecord(
        "webhook.test", logging.INFO, __file__, 1, "x", (), None, extra={"thing": object()}
    )
    assert str(_format(record)["thing"]).startswith("<object object")
