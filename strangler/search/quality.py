""" "Semantic search works" for one collection and day: own-text recall@k and the spec's probes.

Recall: for a seeded sample of D's objects, the vector of the object's own text (the
`search.text` template over its stored properties, re-encoded through the cache, so it costs no
model time) is queried across the whole collection; the object must come back in the top k.
Ties count: templated texts can be identical, and an object whose distance equals the k-th
hit's is as good a match as any of them.
Probes (`search.queries` of the spec): each query's text over D's objects must return mostly
objects that have the expected property values among the top n, n = min(k, D's objects that
have them); the share must reach the probe's `min_precision`.
Scrambled or stale vectors fail both.
In a multi-tenant collection the recall probe searches the object's own tenant (the scope a
tenant searches in) and the probes run in every tenant, merged by distance.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

import numpy as np
import weaviate
from weaviate.classes.query import Filter, MetadataQuery

from strangler.search.embedding_cache import CachedEncoder
from strangler.search.objects import render
from strangler.search.schema import DAY, CollectionDecl
from strangler.search.tenants import near_vector_all, scopes
from strangler.spec.models import SearchQuery

_TIE = 1e-4
_FETCH_LIMIT = 10_000


@dataclass(frozen=True)
class QualityOptions:
    sample_size: int = 20
    k: int = 5
    min_recall: float = 0.9


@dataclass
class ProbeResult:
    """One `search.queries` probe on D."""

    query: SearchQuery
    considered: int = 0
    """n = min(k, D's objects with the expected values); 0: nothing to find, not judged."""
    correct: int = 0
    top: list[dict[str, Any]] = field(default_factory=list)
    """The expected properties of the top n hits, best first."""

    @property
    def precision(self) -> float | None:
        return self.correct / self.considered if self.considered else None

    @property
    def passed(self) -> bool:
        return self.precision is None or self.precision >= self.query.min_precision

    def metadata(self) -> dict[str, Any]:
        return {
            "query": self.query.text,
            "expect": dict(self.query.expect),
            "precision": round(self.precision, 4) if self.precision is not None else None,
            "considered": self.considered,
            "min_precision": self.query.min_precision,
            "top": self.top,
        }


@dataclass
class QualityResult:
    collection: str
    day: str
    sampled: int = 0
    hits: int = 0
    misses: list[str] = field(default_factory=list)
    probes: list[ProbeResult] = field(default_factory=list)
    options: QualityOptions = field(default_factory=QualityOptions)

    @property
    def recall(self) -> float:
        return self.hits / self.sampled if self.sampled else 1.0

    @property
    def passed(self) -> bool:
        return self.recall >= self.options.min_recall and all(p.passed for p in self.probes)

    def metadata(self) -> dict[str, Any]:
        return {
            "sampled": self.sampled,
            "recall_at_k": round(self.recall, 4),
            "k": self.options.k,
            "min_recall": self.options.min_recall,
            "probes": [p.metadata() for p in self.probes],
            "misses": self.misses[:10],
        }


def check_day(
    client: weaviate.WeaviateClient,
    encoder: CachedEncoder,
    decl: CollectionDecl,
    day: str,
    options: QualityOptions | None = None,
) -> QualityResult:
    options = options or QualityOptions()
    encoder = encoder.with_chunking(decl.chunk_overlap, decl.max_tokens)
    result = QualityResult(decl.name, day, options=options)
    if not client.collections.exists(decl.name):
        return result
    on_day = Filter.by_property(DAY).equal(day)
    population: list[tuple[Any, Any]] = []
    for _tenant, handle in scopes(client, decl.name):
        found = handle.query.fetch_objects(filters=on_day, limit=_FETCH_LIMIT, include_vector=False)
        population += [(handle, o) for o in found.objects]
    population.sort(key=lambda p: str(p[1].uuid))
    sample = random.Random(f"{decl.name}:{day}").sample(
        population, min(options.sample_size, len(population))
    )
    result.sampled = len(sample)
    if sample:
        queries, _ = encoder.encode([render(decl.text, o.properties) for _, o in sample])
        for (handle, obj), query in zip(sample, queries, strict=True):
            if _recalled(handle, obj.uuid, query, options.k):
                result.hits += 1
            else:
                result.misses.append(str(obj.uuid))
    for probe in decl.queries:
        result.probes.append(_probe(client, decl, encoder, on_day, probe, options.k))
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


def matches(value: Any, expected: Any) -> bool:
    """A stored value equals the probe's expected one (numbers by value, else as text)."""
    if isinstance(expected, bool) or isinstance(value, bool):
        return value is expected
    if isinstance(expected, int | float) and isinstance(value, int | float):
        return float(value) == float(expected)
    return value is not None and str(value) == str(expected)


def _probe(
    client: weaviate.WeaviateClient,
    decl: CollectionDecl,
    encoder: CachedEncoder,
    on_day: Any,
    query: SearchQuery,
    k: int,
) -> ProbeResult:
    out = ProbeResult(query)
    expected = reduce(
        lambda a, b: a & b,
        [Filter.by_property(name).equal(value) for name, value in query.expect.items()],
    )
    available = 0
    for _tenant, handle in scopes(client, decl.name):
        found = handle.aggregate.over_all(filters=on_day & expected, total_count=True)
        available += int(found.total_count or 0)
    n = min(k, available)
    if n == 0:
        return out
    vector, _ = encoder.encode([query.text])
    hits = near_vector_all(
        client,
        decl.name,
        vector[0].tolist(),
        n,
        filters=on_day,
        return_properties=list(query.expect),
    )
    out.considered = n
    out.top = [{name: _plain(h.properties.get(name)) for name in query.expect} for _, h in hits]
    out.correct = sum(
        all(matches(h.properties.get(name), value) for name, value in query.expect.items())
        for _, h in hits
    )
    return out


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)
