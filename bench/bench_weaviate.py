"""Synthetic days for the Weaviate sink (the memory test): one text collection of the spec.

The Weaviate benchmark itself is the `weaviate_import` and `embedding` stages of
`bench.bench_chain`; what stays here builds a day without a monolith: the spec's collections
typed from the live monolith's catalog, the collection whose text is a single field, and
lazily generated upsert records of it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime

import psycopg

from strangler.migration.drift import read_live
from strangler.migration.kafka_records import EventRecord
from strangler.search.schema import CollectionDecl, CollectionNames, declare
from strangler.settings import get_settings
from strangler.spec.models import EstateSpec

DAY = "2025-01-02"
_ONE_FIELD = re.compile(r"^\{(\w+)\}$")


def declare_all(spec: EstateSpec, names: CollectionNames) -> list[CollectionDecl]:
    """The spec's collections, typed from the source tables as the monolith has them now."""
    settings = get_settings()
    with psycopg.connect(settings.source_url or settings.postgres_url) as conn:
        columns = {a.name: read_live(conn, a).types for a in spec.searchable}
    return declare(spec, names, columns)


def text_decl(decls: Sequence[CollectionDecl]) -> CollectionDecl:
    """The collection whose `search.text` is one field (`{field}`), e.g. a page's text."""
    for decl in decls:
        if _ONE_FIELD.match(decl.text.strip()):
            return decl
    raise LookupError(f"no collection's text is a single field: {[d.text for d in decls]}")


def page_records(
    decl: CollectionDecl, texts: Iterable[str], salt: str = "bench"
) -> Iterator[EventRecord]:
    """One upsert record of `decl` per text, generated lazily (row ids 1..n)."""
    match = _ONE_FIELD.match(decl.text.strip())
    if match is None:
        raise ValueError(f"{decl.aggregate}: text {decl.text!r} is not a single field")
    text_field = match.group(1)
    event_type = sorted(decl.upsert_events)[0]
    at = datetime(2025, 1, 2, 12, tzinfo=UTC)
    for i, text in enumerate(texts):
        yield EventRecord(
            event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{salt}/{i}"),
            event_type=event_type,
            schema_version=1,
            aggregate_type=decl.stream_type,
            aggregate_id=str(i + 1),
            aggregate_version=1,
            occurred_at=at,
            partition_day=DAY,
            payload={text_field: text},
            metadata={},
            position=i,
            topic=salt,
            kafka_partition=0,
            offset=i,
        )
