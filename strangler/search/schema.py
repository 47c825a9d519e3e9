"""The search-service's Weaviate schema, declared once and created idempotently.

Three collections with self-provided vectors (no vectorizer module: we embed), HNSW with
cosine distance, and cross-references `OcrPage.document -> Document`,
`Document.customer -> Customer`. Every object carries `day` (the partition it came from,
so a day can be replaced) and `load_token` (the run that wrote it, so objects the source no
longer has are the ones a run did not touch). An existing collection that differs from the
declaration is reported as drift and left alone: changing a live index is a human decision.
With multi-tenancy on (strangler.search.tenants), `Document` and `OcrPage` hold one tenant per
customer; `Customer` stays single-tenant.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import weaviate
from weaviate.classes.config import (
    Configure,
    DataType,
    Property,
    ReferenceProperty,
    Tokenization,
    VectorDistances,
)

DAY = "day"
LOAD_TOKEN = "load_token"
TYPES = ("Customer", "Document", "OcrPage")
"""Aggregate types, in load order: reference targets first."""
MULTI_TENANT_TYPES = ("Document", "OcrPage")
"""Collections split into one tenant per customer when multi-tenancy is on."""
REFERENCE_KEYS: dict[str, tuple[str, str]] = {
    "customer": ("Customer", "customer_id"),
    "document": ("Document", "document_id"),
}
"""Reference property -> (target aggregate type, property holding the target's aggregate id)."""


@dataclass(frozen=True)
class SchemaOptions:
    """Index settings (from STRANGLER_WEAVIATE_* settings)."""

    distance: str = "cosine"
    ef_construction: int = 128
    max_connections: int = 32
    ef: int = -1
    replication_factor: int = 1
    multi_tenancy: bool = False


@dataclass(frozen=True)
class CollectionNames:
    """Collection names, optionally prefixed (tests and side-by-side deployments)."""

    prefix: str = ""

    def of(self, aggregate_type: str) -> str:
        if aggregate_type not in TYPES:
            raise ValueError(f"no collection for aggregate type {aggregate_type!r}")
        # Weaviate capitalizes the first letter of a class name; keep prefixes capitalized.
        name = f"{self.prefix}{aggregate_type}"
        return name[:1].upper() + name[1:]

    @property
    def customer(self) -> str:
        return self.of("Customer")

    @property
    def document(self) -> str:
        return self.of("Document")

    @property
    def ocr_page(self) -> str:
        return self.of("OcrPage")


@dataclass(frozen=True)
class CollectionSpec:
    name: str
    properties: dict[str, DataType]
    references: dict[str, str] = field(default_factory=dict)
    """Reference property -> target collection name."""
    description: str = ""
    multi_tenant: bool = False


_KEYWORD = {"day", "load_token", "category", "status", "plan", "country", "content_hash"}


def declared(names: CollectionNames, multi_tenancy: bool = False) -> list[CollectionSpec]:
    """The declared collections, reference targets first."""
    common = {DAY: DataType.TEXT, LOAD_TOKEN: DataType.TEXT, "content_hash": DataType.TEXT}
    return [
        CollectionSpec(
            names.customer,
            {
                "customer_id": DataType.INT,
                "name": DataType.TEXT,
                "plan": DataType.TEXT,
                "country": DataType.TEXT,
                **common,
            },
            description="A customer of the monolith; vector of name, plan and country.",
        ),
        CollectionSpec(
            names.document,
            {
                "document_id": DataType.INT,
                "customer_id": DataType.INT,
                "title": DataType.TEXT,
                "category": DataType.TEXT,
                "status": DataType.TEXT,
                "page_count": DataType.INT,
                **common,
            },
            references={"customer": names.customer},
            description="An uploaded document; vector of its title and category.",
            multi_tenant=multi_tenancy,
        ),
        CollectionSpec(
            names.ocr_page,
            {
                "page_id": DataType.INT,
                "document_id": DataType.INT,
                "page_number": DataType.INT,
                "text": DataType.TEXT,
                "confidence": DataType.NUMBER,
                **common,
            },
            references={"document": names.document},
            description="One OCR page; vector of its text (chunked and mean-pooled if long).",
            multi_tenant=multi_tenancy,
        ),
    ]


@dataclass
class SchemaReport:
    created: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)


def ensure_schema(
    client: weaviate.WeaviateClient, names: CollectionNames, options: SchemaOptions | None = None
) -> SchemaReport:
    """Create missing collections; report (never change) differences in existing ones."""
    options = options or SchemaOptions()
    report = SchemaReport()
    for spec in declared(names, options.multi_tenancy):
        if client.collections.exists(spec.name):
            report.existing.append(spec.name)
            report.drift.extend(_drift(client, spec, options))
            continue
        try:
            _create(client, spec, options)
            report.created.append(spec.name)
        except weaviate.exceptions.UnexpectedStatusCodeError as exc:
            # Another process created it between exists() and create(): that is fine.
            if "already exists" not in str(exc):
                raise
            report.existing.append(spec.name)
    return report


def _create(client: weaviate.WeaviateClient, spec: CollectionSpec, options: SchemaOptions) -> None:
    client.collections.create(
        spec.name,
        description=spec.description,
        properties=[
            Property(
                name=name,
                data_type=dtype,
                tokenization=Tokenization.FIELD if name in _KEYWORD else None,
                index_searchable=False if name in _KEYWORD else None,
            )
            for name, dtype in spec.properties.items()
        ],
        references=[
            ReferenceProperty(name=ref, target_collection=target)
            for ref, target in spec.references.items()
        ],
        vector_config=Configure.Vectors.self_provided(
            vector_index_config=Configure.VectorIndex.hnsw(
                distance_metric=VectorDistances(options.distance),
                ef_construction=options.ef_construction,
                max_connections=options.max_connections,
                ef=options.ef,
            )
        ),
        replication_config=Configure.replication(factor=options.replication_factor),
        inverted_index_config=Configure.inverted_index(index_null_state=False),
        multi_tenancy_config=(
            Configure.multi_tenancy(
                enabled=True, auto_tenant_creation=True, auto_tenant_activation=True
            )
            if spec.multi_tenant
            else None
        ),
    )


def _drift(
    client: weaviate.WeaviateClient, spec: CollectionSpec, options: SchemaOptions
) -> list[str]:
    """Human-readable differences between the live collection and the declaration."""
    config = client.collections.get(spec.name).config.get()
    found: list[str] = []
    live = {p.name: p.data_type for p in config.properties}
    for name, dtype in spec.properties.items():
        if name not in live:
            found.append(f"{spec.name}.{name}: missing (declared {dtype.value})")
        elif live[name] != dtype:
            found.append(f"{spec.name}.{name}: {live[name].value} (declared {dtype.value})")
    for name in sorted(set(live) - set(spec.properties)):
        found.append(f"{spec.name}.{name}: not declared")
    refs = {r.name: list(r.target_collections) for r in config.references}
    for ref, target in spec.references.items():
        if refs.get(ref) != [target]:
            found.append(f"{spec.name}.{ref}: references {refs.get(ref)} (declared [{target}])")
    index: Any = None
    if config.vector_config:
        index = next(iter(config.vector_config.values())).vector_index_config
    elif config.vector_index_config is not None:
        index = config.vector_index_config
    if index is not None:
        distance = getattr(index, "distance_metric", None)
        if distance is not None and distance.value != options.distance:
            found.append(f"{spec.name}: distance {distance.value} (declared {options.distance})")
        for attr in ("ef_construction", "max_connections"):
            value = getattr(index, attr, None)
            if value is not None and value != getattr(options, attr):
                found.append(f"{spec.name}: {attr} {value} (declared {getattr(options, attr)})")
    factor = config.replication_config.factor if config.replication_config else None
    if factor is not None and factor != options.replication_factor:
        found.append(
            f"{spec.name}: replication factor {factor} (declared {options.replication_factor})"
        )
    tenancy = config.multi_tenancy_config
    live_mt = bool(tenancy and tenancy.enabled)
    if live_mt != spec.multi_tenant:
        found.append(
            f"{spec.name}: multi-tenancy {'on' if live_mt else 'off'} (declared "
            f"{'on' if spec.multi_tenant else 'off'}; STRANGLER_WEAVIATE_MULTI_TENANCY): objects"
            f" keep going where the live collection puts them"
            f" ({'one tenant per customer' if live_mt else 'no tenants'})"
        )
    return found


def drop(client: weaviate.WeaviateClient, names: CollectionNames) -> None:
    """Delete the collections (tests and benchmarks; never called by assets)."""
    for spec in reversed(declared(names)):
        client.collections.delete(spec.name)
