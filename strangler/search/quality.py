""" "Semantic search works" for one day: own-text recall@k and a category query's precision.

Recall: for a seeded sample of D's objects, the vector of the object's own text (re-encoded
through the cache, so it costs no model time) is queried across the whole collection; the
object must come back in the top k. Ties count: templated titles can be identical, and an
object whose distance equals the k-th hit's is as good a match as any of them.
Category: a query written for one category ("overdue invoice, payment reminder") over D's
objects must return mostly that category among the top n, n = min(k, objects of it that day).
Scrambled or stale vectors fail both.
In a multi-tenant collection the recall probe searches the object's own tenant (the scope a
customer searches in) and the category query runs in every tenant, merged by distance.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import weaviate
from weaviate.classes.query import Filter, MetadataQuery, QueryReference

from strangler.search.embedding_cache import CachedEncoder
from strangler.search.objects import vector_text
from strangler.search.schema import DAY, CollectionNames
from strangler.search.tenants import near_vector_all, scopes

_TIE = 1e-4
_FETCH_LIMIT = 10_000


@dataclass(frozen=True)
class QualityOptions:
    sample_size: int = 20
    k: int = 5
    min_recall: float = 0.9
    category_query: str = "overdue invoice, payment reminder"
    category: str = "invoice"
    min_category_precision: float = 0.6


@dataclass
class QualityResult:
    collection: str
    day: str
    sampled: int = 0
    hits: int = 0
    category_hits: int | None = None
    category_considered: int | None = None
    top_categories: list[str] = field(default_factory=list)
    misses: list[str] = field(default_factory=list)
    options: QualityOptions = field(default_factory=QualityOptions)

    @property
    def recall(self) -> float:
        return self.hits / self.sampled if self.sampled else 1.0

    @property
    def category_precision(self) -> float | None:
        if not self.category_considered:
            return None
        return (self.category_hits or 0) / self.category_considered

    @property
    def passed(self) -> bool:
        precision = self.category_precision
        return self.recall >= self.options.min_recall and (
            precision is None or precision >= self.options.min_category_precision
        )

    def metadata(self) -> dict[str, Any]:
        return {
            "sampled": self.sampled,
            "recall_at_k": round(self.recall, 4),
            "k": self.options.k,
            "min_recall": self.options.min_recall,
            "category_query": self.options.category_query,
            "category_precision": (
                round(self.category_precision, 4) if self.category_precision is not None else None
            ),
            "category_considered": self.category_considered,
            "min_category_precision": self.options.min_category_precision,
            "top_categories": self.top_categories,
            "misses": self.misses[:10],
        }


def check_day(
    client: weaviate.WeaviateClient,
    encoder: CachedEncoder,
    names: CollectionNames,
    aggregate_type: str,
    day: str,
    options: QualityOptions | None = None,
) -> QualityResult:
    options = options or QualityOptions()
    name = names.of(aggregate_type)
    result = QualityResult(name, day, options=options)
    on_day = Filter.by_property(DAY).equal(day)
    population: list[tuple[Any, Any]] = []
    available = 0
    for _tenant, handle in scopes(client, name):
        found = handle.query.fetch_objects(filters=on_day, limit=_FETCH_LIMIT, include_vector=False)
        population += [(handle, o) for o in found.objects]
        if found.objects and aggregate_type in ("Document", "OcrPage"):
            available += _of_category(handle, aggregate_type, on_day, options.category)
    population.sort(key=lambda p: str(p[1].uuid))
    sample = random.Random(f"{name}:{day}").sample(
        population, min(options.sample_size, len(population))
    )
    result.sampled = len(sample)
    if sample:
        queries, _ = encoder.encode([vector_text(aggregate_type, o.properties) for _, o in sample])
        for (handle, obj), query in zip(sample, queries, strict=True):
            if _recalled(handle, obj.uuid, query, options.k):
                result.hits += 1
            else:
                result.misses.append(str(obj.uuid))
    if aggregate_type in ("Document", "OcrPage"):
        _category(client, name, encoder, aggregate_type, on_day, available, result)
    return result


def _recalled(collection: Any, target: Any, query: np.ndarray, k: int) -> bool:
    hits = collection.query.near_vector(
        near_vector=query.tolist(),
        limit=k,
        return_metadata=MetadataQuery(distance=True),
        return_properties=[],
    ).objects
    if any(h.uuid == target for h in hits):
        return True
    if len(hits) < k or not hits:
        return False
    own = collection.query.near_vector(
        near_vector=query.tolist(),
        limit=1,
        filters=Filter.by_id().equal(target),
        return_metadata=MetadataQuery(distance=True),
        return_properties=[],
    ).objects
    kth = hits[-1].metadata.distance
    return (
        bool(own)
        and own[0].metadata.distance is not None
        and kth is not None
        and (own[0].metadata.distance <= kth + _TIE)
    )


def _of_category(handle: Any, aggregate_type: str, on_day: Any, category: str) -> int:
    """D's objects of `category` in one scope (a page's category is its document's)."""
    if aggregate_type == "Document":
        of_category = Filter.by_property("category").equal(category)
    else:
        of_category = Filter.by_ref("document").by_property("category").equal(category)
    found = handle.aggregate.over_all(filters=on_day & of_category, total_count=True)
    return int(found.total_count or 0)


def _category(
    client: weaviate.WeaviateClient,
    name: str,
    encoder: CachedEncoder,
    aggregate_type: str,
    on_day: Any,
    available: int,
    result: QualityResult,
) -> None:
    options = result.options
    n = min(options.k, available)
    if n == 0:
        return
    refs = (
        None
        if aggregate_type == "Document"
        else QueryReference(link_on="document", return_properties=["category"])
    )
    query, _ = encoder.encode([options.category_query])
    hits = near_vector_all(
        client,
        name,
        query[0].tolist(),
        n,
        filters=on_day,
        return_references=refs,
        return_properties=["category"] if aggregate_type == "Document" else [],
    )
    categories = [_category_of(aggregate_type, h) for _, h in hits]
    result.top_categories = categories
    result.category_considered = n
    result.category_hits = sum(c == options.category for c in categories)


def _category_of(aggregate_type: str, obj: Any) -> str:
    if aggregate_type == "Document":
        return str(obj.properties.get("category"))
    ref = (obj.references or {}).get("document")
    if ref is None or not ref.objects:
        return "?"
    return str(ref.objects[0].properties.get("category"))
