"""Pure parts of the search sink: the declaration from a spec (types, references, tenants),
chunking, pooling, the cache, folding events into objects (merge, deletes, folded rows)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from weaviate.classes.config import DataType

from strangler.assets.weaviate_collections import build_weaviate_assets
from strangler.migration.kafka_records import EventRecord
from strangler.search.chunking import chunk_text, pool
from strangler.search.embedding_cache import CachedEncoder, EmbeddingCache
from strangler.search.objects import DayFold, object_uuid, render
from strangler.search.schema import (
    CollectionDecl,
    CollectionNames,
    SearchDeclarationError,
    cast_type,
    declare,
    property_type,
)
from strangler.spec import parse_spec
from strangler.spec.models import EstateSpec


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


SPEC = """
version: 1
estate: {name: blog, first_partition: 2025-01-01}
aggregates:
  - name: Team
    source: {table: teams, primary_key: [id]}
    partitioning: {reference: true}
    topic: teams
  - name: Author
    source: {table: authors, primary_key: [id]}
    partitioning: {time_column: joined_at}
    topic: authors
    parents:
      - {aggregate: Team, columns: [team_code]}
    events:
      named:
        - {type: AuthorRenamed, when: "true", at: joined_at, fields: {id: id, name: name}}
    search:
      text: "{name} writes about {topic}"
      properties: [name, topic, joined_at, tags, karma, profile, team_code]
      tenant: team_code
  - name: Post
    source: {table: posts, primary_key: [author_id, post_no]}
    partitioning: {parent: Author}
    topic: posts
    parents:
      - {aggregate: Author, columns: [author_id]}
    search:
      text: "{title}: {body}"
      tenant: {parent: Author}
      chunking: {max_tokens: 64, overlap: 4}
      queries:
        - {text: cooking, expect: {kind: recipe}, min_precision: 0.5}
  - name: Comment
    source: {table: comments, primary_key: [author_id, post_no, n]}
    partitioning: {parent: Post}
    fold_into: Post
    parents:
      - {aggregate: Post, columns: [author_id, post_no]}
    search:
      text: "{body}"
      references: true
      tenant: {parent: Post}
"""
COLUMNS = {
    "Author": {
        "id": "int8",
        "name": "text",
        "topic": "mood",
        "joined_at": "timestamptz",
        "tags": "_text",
        "karma": "numeric",
        "profile": "jsonb",
        "team_code": "bpchar",
    },
    "Post": {
        "author_id": "int8",
        "post_no": "int4",
        "title": "text",
        "body": "text",
        "kind": "text",
        "id": "uuid",
    },
    "Comment": {"author_id": "int8", "post_no": "int4", "n": "int2", "body": "text"},
}
DAY = "2025-01-02"


def _spec(text: str = SPEC) -> EstateSpec:
    return parse_spec(text)


def _decls(multi_tenancy: bool = False) -> dict[str, CollectionDecl]:
    decls = declare(_spec(), CollectionNames("t1"), COLUMNS, multi_tenancy=multi_tenancy)
    return {d.aggregate: d for d in decls}


def test_a_collection_per_searchable_aggregate_typed_by_the_one_mapping() -> None:
    decls = _decls()
    assert list(decls) == ["Author", "Post", "Comment"]  # parents first; Team has no search:
    author = decls["Author"]
    assert author.name == "T1Author"
    assert author.properties == {
        "name": DataType.TEXT,
        "topic": DataType.TEXT,  # an enum: a type the mapping does not know -> text
        "joined_at": DataType.DATE,
        "tags": DataType.TEXT_ARRAY,
        "karma": DataType.TEXT,  # numeric stays exact text
        "profile": DataType.TEXT,  # json -> text of its JSON
        "team_code": DataType.TEXT,
    }
    assert author.json_text == {"topic", "profile"}
    assert author.upsert_events == {"AuthorImported", "AuthorChanged", "AuthorRenamed"}
    assert author.delete_events == {"AuthorDeleted"}
    assert author.references == ()  # Team is not searchable
    assert author.tenant_field == "team_code" and not author.multi_tenant
    # Default properties: every field but Weaviate's reserved `id` (source_id holds the key).
    post = decls["Post"]
    assert set(post.properties) == {"author_id", "post_no", "title", "body", "kind"}
    assert post.properties["author_id"] == DataType.INT
    (ref,) = post.references
    assert (ref.name, ref.target_collection, ref.fields) == ("author", "T1Author", ("author_id",))
    assert post.tenant_parent == "Author" and (post.max_tokens, post.chunk_overlap) == (64, 4)
    comment = decls["Comment"]
    assert comment.stream_type == "Post" and comment.upsert_events == {
        "CommentImported",
        "CommentChanged",
    }
    assert comment.references[0].fields == ("author_id", "post_no")
    assert comment.references[0].name == "post"
    assert all(d.multi_tenant for d in _decls(multi_tenancy=True).values())


def test_property_types() -> None:
    assert property_type("int4") == DataType.INT
    assert property_type("float8") == DataType.NUMBER
    assert property_type("bool") == DataType.BOOL
    assert property_type("uuid") == DataType.UUID
    assert property_type("date") == DataType.TEXT
    assert property_type("_int8") == DataType.INT_ARRAY
    assert property_type("_jsonb") is None
    assert property_type("geometry") is None
    assert property_type("numeric", "number") == DataType.NUMBER
    assert property_type(None) is None
    assert cast_type("confidence::float8") == "float8"
    assert cast_type("(a + b) :: double precision ") == "float8"
    assert cast_type("tags::text[]") == "_text"
    assert cast_type("coalesce(metadata, '{}'::jsonb)") is None
    assert cast_type("lower(name)") is None


def test_a_search_block_that_cannot_be_a_collection_is_refused() -> None:
    with pytest.raises(SearchDeclarationError, match="not carry"):
        declare(_spec(SPEC.replace("[name, topic,", "[nom, topic,")), CollectionNames(), COLUMNS)
    with pytest.raises(SearchDeclarationError, match="cannot be a Weaviate property"):
        declare(_spec(SPEC.replace("[name, topic,", "[id, topic,")), CollectionNames(), COLUMNS)
    with pytest.raises(SearchDeclarationError, match="not stored properties"):
        declare(
            _spec(SPEC.replace("{kind: recipe}", "{genre: recipe}")), CollectionNames(), COLUMNS
        )
    team_searchable = SPEC.replace(
        "    topic: teams\n", '    topic: teams\n    search: {text: "{name}"}\n'
    )
    assert team_searchable != SPEC
    with pytest.raises(SearchDeclarationError, match="partitioned by time"):
        declare(_spec(team_searchable), CollectionNames(), COLUMNS)
    with pytest.raises(SearchDeclarationError, match="partitioned by time"):
        build_weaviate_assets(_spec(team_searchable))
    with pytest.raises(SearchDeclarationError, match="no column types"):
        declare(_spec(), CollectionNames(), {**COLUMNS, "Post": {}})


def _rec(
    stream: str,
    stream_id: str,
    version: int,
    etype: str,
    payload: dict[str, Any],
    *,
    source_id: str | None = None,
    day: str = DAY,
) -> EventRecord:
    return EventRecord(
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"{stream}{stream_id}{version}{etype}{source_id}"),
        event_type=etype,
        schema_version=1,
        aggregate_type=stream,
        aggregate_id=stream_id,
        aggregate_version=version,
        occurred_at=datetime(2025, 1, 2, tzinfo=UTC),
        partition_day=day,
        payload=payload,
        metadata={"source_id": source_id or stream_id},
        position=version,
        topic="t",
        kafka_partition=0,
        offset=version,
    )


def test_fold_merges_state_deletes_remove_folded_rows_are_their_own_objects() -> None:
    decls = _decls()
    author = {"id": 9, "name": "Ann", "topic": "food", "team_code": "NL", "profile": {"a": 1}}
    post = {"author_id": 9, "post_no": 1, "title": "Soup", "body": "Boil water", "kind": "recipe"}
    records = [
        _rec("Author", "9", 2, "AuthorRenamed", {"id": 9, "name": "Anna"}),
        _rec("Author", "9", 1, "AuthorImported", author),
        _rec("Author", "8", 1, "AuthorImported", {**author, "id": 8}),
        _rec("Author", "8", 2, "AuthorDeleted", {"id": 8}),
        _rec("Author", "7", 1, "AuthorImported", {**author, "id": 7}, day="2025-01-01"),
        _rec("Post", "9|1", 1, "PostImported", post),
        _rec("Post", "9|1", 2, "PostChanged", {"body": "Boil salted water"}),
        # Comments travel in their post's stream; their row is the metadata's source_id.
        _rec(
            "Post",
            "9|1",
            3,
            "CommentImported",
            {"author_id": 9, "post_no": 1, "n": 1, "body": "Yum"},
            source_id="9|1|1",
        ),
        _rec(
            "Post",
            "9|1",
            4,
            "CommentImported",
            {"author_id": 9, "post_no": 1, "n": 2, "body": "Meh"},
            source_id="9|1|2",
        ),
        _rec("Post", "9|1", 5, "CommentDeleted", {}, source_id="9|1|2"),
        _rec("Other", "1", 1, "Unrelated", {"x": 1}),
    ]
    with DayFold(DAY, list(decls.values())) as fold:
        fold.add(records)
        fold.add(records[:2])  # Kafka redelivery
        assert fold.duplicates == 2
        (a,) = fold.stream("Author")  # 8 was deleted, 7 is another day's
        assert a.properties["name"] == "Anna" and a.properties["topic"] == "food"
        assert a.properties["profile"] == '{"a": 1}'  # text of its JSON
        assert a.properties["day"] == DAY and a.properties["source_id"] == "9"
        assert a.text == "Anna writes about food" and a.tenant_key == "NL"
        assert a.uuid == object_uuid("Author", "9")
        (p,) = fold.stream("Post")
        assert p.properties["body"] == "Boil salted water" and p.properties["kind"] == "recipe"
        assert p.references == {"author": object_uuid("Author", "9")}
        assert p.parents == {"Author": "9"}
        (c,) = fold.stream("Comment")
        assert c.row_id == "9|1|1" and c.uuid == object_uuid("Comment", "9|1|1")
        assert c.references == {"post": object_uuid("Post", "9|1")}
        assert [r for r, _ in fold.keys("Comment", deleted=True)] == ["9|1|2"]
        assert fold.count("Author") == 1
        # A deleted parent still has a state (its children's tenant).
        assert fold.states("Author", ["8", "9", "1"])["8"]["team_code"] == "NL"


def test_render_and_names() -> None:
    assert (
        render("{title} ({category})", {"title": "Invoice 1", "category": None}) == "Invoice 1 ()"
    )
    assert render("{n} x {sku}", {"n": 2, "sku": "A"}) == "2 x A"
    assert render("{tags}", {"tags": ["a", "b"]}) == '["a", "b"]'
    # A date property read back from Weaviate renders as the event's text did.
    at = "2026-05-04T01:00:00+00:00"
    assert render("{at}", {"at": datetime.fromisoformat(at)}) == render("{at}", {"at": at})
    assert CollectionNames("t1").of("Post") == "T1Post"
    assert CollectionNames().of("Post") == "Post"


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
    from strangler.search.tenants import tenant_name

    assert tenant_name(7) == tenant_name("7") == tenant_name(7.0) == "7"
    assert tenant_name("NL") == "NL" and tenant_name("team_a-1") == "team_a-1"
    for bad in ("", None, True, "a b", "x" * 65, "Ü", 1.5, {"a": 1}):
        with pytest.raises(ValueError):
            tenant_name(bad)


def test_tenants_follow_the_parent_chain_and_unresolved_rows_say_why() -> None:
    from strangler.search.sink import TenantResolver

    decls = _decls(multi_tenancy=True)
    records = [
        _rec("Author", "9", 1, "AuthorImported", {"id": 9, "name": "A", "team_code": "NL"}),
        _rec("Author", "8", 1, "AuthorImported", {"id": 8, "name": "B", "team_code": None}),
        _rec("Author", "6", 1, "AuthorImported", {"id": 6, "name": "C", "team_code": "N L"}),
        *(
            _rec("Post", f"{a}|1", 1, "PostImported", {"author_id": a, "post_no": 1, "title": "t"})
            for a in (9, 8, 5)
        ),
        _rec("Post", "0|1", 1, "PostImported", {"author_id": None, "post_no": 1}),
        _rec(
            "Post",
            "9|1",
            2,
            "CommentImported",
            {"author_id": 9, "post_no": 1, "n": 1},
            source_id="9|1|1",
        ),
        _rec(
            "Post",
            "8|1",
            2,
            "CommentImported",
            {"author_id": 8, "post_no": 1, "n": 1},
            source_id="8|1|1",
        ),
    ]
    with DayFold(DAY, list(decls.values())) as fold:
        fold.add(records)
        resolver = TenantResolver(None, fold)  # no event store: only the day's rows are known
        authors = resolver.place(decls["Author"], fold.stream("Author"))
        assert authors.tenants == {"9": "NL"}
        assert "has no team_code" in authors.unresolved["8"]
        assert "tenant name" in authors.unresolved["6"]
        posts = resolver.place(decls["Post"], fold.stream("Post"))
        assert posts.tenants == {"9|1": "NL"}
        assert "has no team_code" in posts.unresolved["8|1"]
        assert "Author 5 is unknown" in posts.unresolved["5|1"]
        assert "author_id not set" in posts.unresolved["0|1"]
        comments = resolver.place(decls["Comment"], fold.stream("Comment"))
        assert comments.tenants == {"9|1|1": "NL"}  # two levels up
        assert all(r.endswith("no tenant to put it in") for r in comments.unresolved.values())
