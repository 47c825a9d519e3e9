"""Weaviate v4 client: local stack, custom URL, or a cluster with an API key."""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import dagster as dg
import weaviate
from weaviate.classes.init import AdditionalConfig, Auth, Timeout

CLIENT_LOGGER = "weaviate-client"
"""The logger of weaviate-client (weaviate/logger.py); every record of the library goes to it."""

_NUMBER = r"-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_FLOAT_LIST = re.compile(rf"\[\s*{_NUMBER}(?:\s*,\s*{_NUMBER}){{7,}}\s*\]")


class BatchErrorLogFilter(logging.Filter):
    """Keeps vectors (and page texts) of rejected objects out of the logs.

    weaviate-client 4.16 logs a partly failed `insert_many` at ERROR as a dict whose "errors"
    holds every rejected `ErrorObject`, i.e. the whole object: properties and the full vector
    (collections/data/executor.py); the batch context manager logs `ErrorReference`s the same
    way (collections/batch/base.py). A 500-object batch can thus put megabytes of floats and
    OCR text into Dagster's event log. The record is kept (level, logger, message) but its dict
    becomes one line: the count and the first distinct error messages with their object ids.
    Any other record of the library that still carries a list of 8+ numbers gets it replaced by
    `<vector dim=N>`. The sink records each rejection in failed_entities; nothing is lost.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, dict) and "errors" in record.msg:
            record.msg = summarize_batch_errors(record.msg)
            record.args = ()
            return True
        text = record.getMessage()
        cleaned = redact_vectors(text)
        if cleaned != text:
            record.msg = cleaned
            record.args = ()
        return True


def redact_vectors(text: str) -> str:
    """Replace each printed list of 8+ numbers with `<vector dim=N>`."""
    return _FLOAT_LIST.sub(lambda m: f"<vector dim={m.group(0).count(',') + 1}>", text)


def summarize_batch_errors(payload: dict[str, Any], shown: int = 3) -> str:
    """`{"message": ..., "errors": {...}}` -> one line without objects or vectors."""
    errors = payload.get("errors")
    items: Iterable[Any] = errors.values() if isinstance(errors, dict) else errors or ()
    messages: dict[str, list[str]] = {}
    count = 0
    for error in items:
        count += 1
        message = str(getattr(error, "message", error))
        ident = _ident(error)
        ids = messages.setdefault(message, [])
        if ident and len(ids) < shown:
            ids.append(ident)
    parts = [
        f"{m!r}" + (f" ({', '.join(ids)})" if ids else "")
        for m, ids in list(messages.items())[:shown]
    ]
    more = f"; {len(messages) - shown} more distinct" if len(messages) > shown else ""
    head = redact_vectors(str(payload.get("message", "weaviate batch errors")))
    extra = {k: v for k, v in payload.items() if k not in ("message", "errors")}
    tail = f" {redact_vectors(str(extra))}" if extra else ""
    listed = "; ".join(parts)
    return f"{head} [{count} error(s), {len(messages)} distinct: {listed}{more}]{tail}"


def _ident(error: Any) -> str:
    """The rejected object's uuid, or a reference's source beacon; '' if neither."""
    obj = getattr(error, "object_", None)
    if obj is not None and getattr(obj, "uuid", None) is not None:
        return f"uuid {obj.uuid}"
    ref = getattr(error, "reference", None)
    if ref is not None:
        source = getattr(ref, "from_object_uuid", "?")
        return f"from {source}.{getattr(ref, 'from_property_name', '?')}"
    return ""


def install_log_filter() -> None:
    """Add BatchErrorLogFilter to the client's logger once per process (idempotent)."""
    logger = logging.getLogger(CLIENT_LOGGER)
    if not any(isinstance(f, BatchErrorLogFilter) for f in logger.filters):
        logger.addFilter(BatchErrorLogFilter())


class WeaviateResource(dg.ConfigurableResource):
    url: str
    grpc_port: int = 50051
    api_key: str | None = None

    @contextmanager
    def client(self) -> Iterator[weaviate.WeaviateClient]:
        install_log_filter()
        parsed = urlparse(self.url)
        secure = parsed.scheme == "https"
        with warnings.catch_warnings():
            # The init checks also ask PyPI for the newest client and warn (Dep005) that 4.16.2
            # is old: it is pinned on purpose, so that advice is noise on every command.
            warnings.filterwarnings("ignore", message="Dep005", category=DeprecationWarning)
            client = weaviate.connect_to_custom(
                http_host=parsed.hostname or "127.0.0.1",
                http_port=parsed.port or (443 if secure else 80),
                http_secure=secure,
                grpc_host=parsed.hostname or "127.0.0.1",
                grpc_port=self.grpc_port,
                grpc_secure=secure,
                auth_credentials=Auth.api_key(self.api_key) if self.api_key else None,
                additional_config=AdditionalConfig(timeout=Timeout(init=30, query=60, insert=120)),
                skip_init_checks=False,
            )
        try:
            yield client
        finally:
            client.close()
