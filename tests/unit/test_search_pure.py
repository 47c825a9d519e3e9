"""Pure parts of the search sink: chunking, pooling, the cache, folding events into objects."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from strangler.migration.kafka_records import EventRecord
from strangler.search.chunking import chunk_text, pool
from strangler.search.embedding_cache import CachedEncoder, EmbeddingCache
from strangler.search.objects import DayFold, object_uuid, vector_text
from strangler.search.schema import CollectionNames


def _words(text: str, **_: Any) -> dict[str, Any]:
    """A whitespace tokenizer with offsets, shaped like a fast HF tokenizer's output."""
    return {"offset_mapping": [(m.start(), m.end()) for m in re.finditer(r"\S+", text)]}


class _Stub:
    """Deterministic 'model': a vector from the text's hash; counts what it encodes."""

    model_name = "stub:test"
    dimension = 8
    max_tokens = 6

    def __init__(self) -> None:
        self.seen: list[str] = []

    def tokenizer(self) -> object:
        return _words

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.seen.extend(texts)
        out = np.stack([np.random.default_rng(abs(hash(t)) % 2**32).normal(size=8) for t in texts])
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def test_short_text_is_one_chunk_and_long_text_overlaps() -> None:
    assert chunk_text("a b c", _words, max_tokens=6, overlap=1) == ["a b c"]
    chunks = chunk_text("w1 w2 w3 w4 w5 w6 w7 w8 w9", _words, max_tokens=6, overlap=1)
    assert chunks == ["w1 w2 w3 w4", "w4 w5 w6 w7", "w7 w8 w9"]


def test_pool_means_groups_and_renormalizes() -> None:
    v = np.array([[1, 0], [0, 1], [1, 0]], dtype=np.float32)
    out = pool(v, [2, 1])
    assert np.allclose(out[0], [2**-0.5, 2**-0.5]) and np.allclose(out[1], [1, 0])


def test_cache_encodes_identical_texts_once_and_rerun_costs_nothing(tmp_path: Path) -> None:
    stub = _Stub()
    cache = EmbeddingCache(tmp_path / "c.sqlite3", "stub", stub.dimension)
    enc = CachedEncoder(stub, cache, chunk_overlap=1)
    texts = ["same text", "same text", "other", "w1 w2 w3 w4 w5 w6 w7 w8 w9"]
    first, stats = enc.encode(texts)
    assert stats.unique == 3 and stats.encoded == 3 and stats.long_texts == 1 and stats.chunks == 5
    assert np.array_equal(first[0], first[1])
    again, stats2 = enc.encode(texts)
    assert stats2.encoded == 0 and stats2.cache_hits == 3 and stats2.model_s == 0.0
    assert np.array_equal(first, again)
    assert cache.count() == 3


def _rec(
    atype: str, aid: int, version: int, etype: str, payload: dict[str, Any], day: str = "2025-01-02"
) -> EventRecord:
    return EventRecord(
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{atype}{aid}{version}"),
        event_type=etype,
        schema_version=1,
        aggregate_type=atype,
        aggregate_id=str(aid),
        aggregate_version=version,
        occurred_at=datetime(2025, 1, 2, tzinfo=UTC),
        partition_day=day,
        payload=payload,
        metadata={},
        position=version,
        topic="t",
        kafka_partition=0,
        offset=version,
    )


def test_fold_latest_state_wins_duplicates_fold_away_orphans_are_reported() -> None:
    fold = DayFold("2025-01-02")
    page = {"page_id": 5, "document_id": 3, "page_number": 1, "text": "old", "confidence": 0.5}
    fixed = {**page, "text": "corrected"}
    records = [
        _rec(
            "Document",
            3,
            1,
            "DocumentUploaded",
            {
                "document_id": 3,
                "customer_id": 9,
                "title": "T",
                "category": "invoice",
                "page_count": 1,
            },
        ),
        _rec("Document", 3, 2, "DocumentStatusChanged", {"document_id": 3, "status": "processed"}),
        _rec("OcrPage", 5, 2, "OcrPageCorrected", fixed),
        _rec("OcrPage", 5, 1, "OcrPageExtracted", page),
        _rec("Document", 4, 2, "DocumentStatusChanged", {"document_id": 4, "status": "failed"}),
        _rec(
            "Customer",
            9,
            1,
            "CustomerRegistered",
            {"customer_id": 9, "name": "A"},
            day="2025-01-01",
        ),
    ]
    fold.add(records)
    fold.add(records[:2])  # Kafka redelivery
    objects, skipped = fold.objects()
    assert fold.duplicates == 2
    (doc,) = objects["Document"]
    assert doc.properties["status"] == "processed"
    assert doc.references == {"customer": object_uuid("Customer", 9)}
    assert doc.uuid == object_uuid("Document", "3")
    (p,) = objects["OcrPage"]
    assert p.properties["text"] == "corrected" and p.properties["day"] == "2025-01-02"
    assert p.references == {"document": object_uuid("Document", 3)}
    assert objects["Customer"] == []  # another day's event is not this day's object
    assert [(s.aggregate_type, s.aggregate_id) for s in skipped] == [("Document", "4")]


def test_vector_text_and_names() -> None:
    assert (
        vector_text("Document", {"title": "Invoice 1", "category": "bank_statement"})
        == "Invoice 1 (bank statement)"
    )
    assert CollectionNames("t1").document == "T1Document"
    assert CollectionNames().ocr_page == "OcrPage"


def test_ffn_output_matmuls_picks_only_feed_forward_output_projections() -> None:
    """int8 keeps exactly these in fp32; an attention projection slipping in costs speed, a
    missed FFN output costs fidelity (GELU outputs clip under 8-bit activations)."""
    import onnx
    from onnx import TensorProto, helper

    from strangler.resources.embeddings import ffn_output_matmuls

    names = [
        "/encoder/layer.0/attention/self/query/MatMul",
        "/encoder/layer.0/attention/output/dense/MatMul",
        "/encoder/layer.0/intermediate/dense/MatMul",
        "/encoder/layer.0/output/dense/MatMul",
        "/encoder/layer.1/attention/output/dense/MatMul",
        "/encoder/layer.1/output/dense/MatMul",
    ]
    nodes = [
        helper.make_node("MatMul", [f"h{i}", "w"], [f"h{i + 1}"], name=name)
        for i, name in enumerate(names)
    ]
    # Same path, not a MatMul: the bias Add of the projection stays out.
    nodes.append(
        helper.make_node(
            "Add", [f"h{len(names)}", "b"], ["y"], name="/encoder/layer.1/output/dense/Add"
        )
    )
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=[
            helper.make_tensor("w", TensorProto.FLOAT, [4, 4], [0.1] * 16),
            helper.make_tensor("b", TensorProto.FLOAT, [4], [0.0] * 4),
        ],
    )
    model = helper.make_model(graph)
    onnx.checker.check_model(model)
    assert ffn_output_matmuls(model) == [
        "/encoder/layer.0/output/dense/MatMul",
        "/encoder/layer.1/output/dense/MatMul",
    ]


def test_tenant_name_is_deterministic_and_validated() -> None:
    import pytest

    from strangler.search.tenants import customer_of_tenant, tenant_name

    assert tenant_name(7) == tenant_name("7") == "customer-7"
    assert tenant_name(0) == "customer-0"
    assert customer_of_tenant(tenant_name(123456)) == 123456
    assert re.fullmatch(r"[A-Za-z0-9\-_]{1,64}", tenant_name(10**30))  # Weaviate's tenant rule
    for bad in (-1, "-1", "07", " 7", "7a", "", None, 1.0, True, "customer-7", 10**31):
        with pytest.raises(ValueError):
            tenant_name(bad)
    for bad_tenant in ("customer-", "customer-07", "Customer-7", "tenant-7"):
        with pytest.raises(ValueError):
            customer_of_tenant(bad_tenant)


def test_place_puts_pages_in_their_documents_customer_tenant() -> None:
    from strangler.search.tenants import place

    fold = DayFold("2025-01-02")
    doc = {"document_id": 3, "customer_id": 9, "title": "T", "category": "invoice"}
    fold.add(
        [
            _rec("Document", 3, 1, "DocumentUploaded", doc),
            _rec(
                "Document", 4, 1, "DocumentUploaded", {**doc, "document_id": 4, "customer_id": None}
            ),
            *(
                _rec("OcrPage", pid, 1, "OcrPageExtracted", {"page_id": pid, "document_id": did})
                for pid, did in ((5, 3), (6, 8), (7, 2), (8, None))
            ),
        ]
    )
    objects, _ = fold.objects()
    docs = place("Document", objects["Document"], {}, fold.day)
    assert docs.tenants == {"3": "customer-9"}
    assert "no customer_id" in docs.unresolved["4"]
    # Document 3 is of the day; document 8's customer came from the event store; 2 is unknown.
    pages = place("OcrPage", objects["OcrPage"], {"3": 9, "8": "11", "4": None}, fold.day)
    assert pages.tenants == {"5": "customer-9", "6": "customer-11"}
    assert "document 2" in pages.unresolved["7"] and "event store" in pages.unresolved["7"]
    assert "no document_id" in pages.unresolved["8"]
