"""What Weaviate rejects, against the real stack: references, and what the logs then show.

A reference is rejected for real when the live collection lacks the reference property (a
collection created by an older schema, which `ensure_schema` reports as drift and leaves
alone). An object is rejected for real by a property of the wrong type; weaviate-client then
logs the whole object, vector included, unless strangler's log filter is installed.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from strangler.resources.embeddings import EmbedderResource
from strangler.resources.kafka import KafkaResource
from strangler.resources.weaviate import CLIENT_LOGGER, WeaviateResource
from strangler.search import schema
from strangler.search.objects import object_uuid
from strangler.search.schema import CollectionNames, SchemaOptions
from strangler.search.tracking import MIGRATION
from tests.integration.test_weaviate_sink import (
    DAY,
    DOCS,
    PAGES,
    SPEC,
    Day,
    _meta,
    materialize_day,
    weaviate_env,
)

Env = tuple[Day, dict[str, Any], dict[str, Any], CollectionNames]

_FLOAT_RUN = re.compile(r"-?\d+\.\d+(?:[eE][-+]?\d+)?(?:\s*,\s*-?\d+\.\d+(?:[eE][-+]?\d+)?){15,}")
"""16+ comma-separated floats: a vector (or a large part of one) printed into a log line."""


@pytest.fixture
def env(
    postgres_url: str,
    kafka: KafkaResource,
    weaviate_resource: WeaviateResource,
    embedder: EmbedderResource,
    unique: str,
) -> Iterator[Env]:
    """Unique topics and collections, resources and run config for the Weaviate assets."""
    with weaviate_env(postgres_url, kafka, weaviate_resource, embedder, unique) as built:
        yield built


def test_rejected_reference_is_recorded_with_weaviates_message(
    env: Env, weaviate_resource: WeaviateResource
) -> None:
    day, resources, run_config, names = env
    # An older Document collection: declared properties, but no `customer` reference.
    with weaviate_resource.client() as client, psycopg.connect(day.postgres_url) as conn:
        decls = schema.declare_from_store(conn, SPEC, names)
        older = next(d for d in decls if d.aggregate == "Document")
        schema._create(client, dataclasses.replace(older, references=()), SchemaOptions())
    day.publish(day.events(DOCS, PAGES, bad_page=False))

    result = materialize_day(resources, run_config, with_checks=False)
    assert result.success
    document = _meta(result, "Document")
    assert document["failures"] == len(DOCS)
    assert document["references"] == 0
    assert document["upserted"] == 0
    assert any("customer" in d for d in document["schema_drift"]), document["schema_drift"]
    page = _meta(result, "OcrPage")
    assert page["failures"] == 0 and page["references"] == len(PAGES)

    with psycopg.connect(day.postgres_url) as conn:
        rows = conn.execute(
            "SELECT source_key, rule, reason, partition_key, payload"
            " FROM migration_state.failed_entities WHERE migration = %s AND source_table = %s"
            " ORDER BY source_key::int",
            (MIGRATION, names.of("Document")),
        ).fetchall()
        assert [r[0] for r in rows] == [str(k) for k in sorted(DOCS)]
        for key, rule, reason, partition_key, payload in rows:
            assert rule == "reference_rejected" and partition_key == DAY
            # Weaviate's own words, naming the property and the collection.
            assert "property customer does not exist" in reason, reason
            assert names.of("Document") in reason, reason
            assert payload["references"] == {"customer": str(object_uuid("Customer", 7))}
            assert payload["document_id"] == int(key)
        failed_events = conn.execute(
            "SELECT count(*) FROM microservices.service_processing"
            " WHERE service = 'search-service' AND status = 'failed' AND event_id = ANY(%s)",
            (
                [
                    e["event_id"]
                    for e in day.events(DOCS, PAGES, bad_page=False)
                    if e["aggregate_type"] == "Document"
                ],
            ),
        ).fetchone()
        assert failed_events == (2 * len(DOCS),)


def test_rejected_object_logs_its_error_but_no_vector(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    day, resources, run_config, names = env
    day.publish(day.events(DOCS, PAGES, bad_page=True))
    with caplog.at_level(logging.INFO):
        result = materialize_day(resources, run_config, with_checks=False)
    assert result.success
    assert _meta(result, "OcrPage")["failures"] == 1

    # The client's own record of the partly failed batch is still there, at ERROR ...
    batch_errors = [
        r
        for r in caplog.records
        if r.name == CLIENT_LOGGER
        and r.levelno == logging.ERROR
        and r.pathname.endswith("collections/data/executor.py")
    ]
    assert len(batch_errors) == 1, [r.getMessage()[:200] for r in caplog.records]
    # ... but no record, from any logger, carries a vector ...
    for record in caplog.records:
        assert not _FLOAT_RUN.search(record.getMessage()), record.getMessage()[:300]
    assert not _FLOAT_RUN.search(caplog.text)
    # ... nor the object: one line with the count, Weaviate's message and the object's id.
    line = batch_errors[0].getMessage()
    assert "Failed to send 1 objects in a batch of" in line
    assert "page_number" in line, line
    assert str(object_uuid("OcrPage", 99)) in line
    assert "ErrorObject" not in line and "a page whose number is not a number" not in line


def test_filter_rewrites_other_shapes_the_client_logs() -> None:
    """The batch context manager logs a set of messages, and exceptions as text: both pass
    through, only number lists are shortened."""
    from strangler.resources.weaviate import redact_vectors, summarize_batch_errors

    line = summarize_batch_errors({"message": "Failed to send 2 in a batch of 3", "errors": {"a"}})
    assert line == "Failed to send 2 in a batch of 3 [1 error(s), 1 distinct: 'a']"
    vector = ", ".join(f"{0.01 * i:.4f}" for i in range(384))
    assert redact_vectors(f"oops vector=[{vector}] end") == "oops vector=<vector dim=384> end"
    assert redact_vectors("ids [1, 2, 3]") == "ids [1, 2, 3]"
