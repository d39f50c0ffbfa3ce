"""Log lines as text (default) or one JSON object per line (``THINGBRIDGE_LOG_FORMAT=json``),
carrying the id of the request being served, which travels with every task the request
enqueues (a Celery message header), so one id finds an API call and the work it caused."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from contextvars import ContextVar

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
HEADER = "X-Request-Id"
TASK_HEADER = "thingbridge_request_id"
# A caller's own id is kept when it is short and plain (it is logged and echoed back).
_ACCEPTED = re.compile(r"[A-Za-z0-9._:-]{1,64}")

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
task: ContextVar[tuple[str, str] | None] = ContextVar("task", default=None)


class JsonFormatter(logging.Formatter):
    converter = time.gmtime  # the "Z" below: times are UTC

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{record.msecs:03.0f}Z",
                "level": record.levelname, "logger": record.name,
                "message": record.getMessage()}
        if rid := request_id.get():
            line["request_id"] = rid
        if current := task.get():
            line["task"], line["task_id"] = current
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)



def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure(log_format: str) -> None:
    """The root logger writes ``log_format`` (text or json) lines to stderr."""
    logging.basicConfig(level=logging.INFO, format=TEXT_FORMAT)
    reformat(logging.getLogger(), log_format)


def reformat(logger: logging.Logger, log_format: str) -> None:
    """Give every handler of ``logger`` the format (Celery installs its own handlers)."""
    if log_format == "json":
        for handler in logger.handlers:
            handler.setFormatter(JsonFormatter())


def start_request(incoming: str | None) -> str:
    """The id of the request now served: the caller's X-Request-Id if plain, else a new one."""
    rid = incoming if incoming and _ACCEPTED.fullmatch(incoming) else uuid.uuid4().hex
    request_id.set(rid)
    return rid


def task_headers() -> dict | None:
    """Message headers carrying the current request id into an enqueued task."""
    rid = request_id.get()
    return {TASK_HEADER: rid} if rid else None


def start_task(name: str, task_id: str | None, headers_rid: str | None) -> None:
    """In a worker, before a task runs: its name and id, and the request id it came with."""
    task.set((name, task_id or ""))
    request_id.set(headers_rid)
