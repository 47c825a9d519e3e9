"""`weaviate/Customer`, `weaviate/Document`, `weaviate/OcrPage`: the search-service's day D.

Thin layer over `strangler.search`: one step reads D's events once (Kafka offset ranges of D,
or the event store when they are gone), embeds and upserts the three collections in reference
order, and reports each as its own materialization. A partitioned check per collection asks
whether semantic search works on D.
"""

import dagster as dg
from pydantic import Field

from strangler.assets.monolith import OWNERS
from strangler.assets.policies import freshness_policy
from strangler.dagster_preview import partitioned_checks
from strangler.migration.events import TOPICS
from strangler.partitions import daily_partitions
from strangler.resources.embeddings import EmbedderResource
from strangler.resources.kafka import KafkaResource
from strangler.resources.postgres import PostgresResource
from strangler.resources.weaviate import WeaviateResource
from strangler.search.embedding_cache import CachedEncoder, EmbeddingCache
from strangler.search.quality import QualityOptions, check_day
from strangler.search.schema import TYPES, CollectionNames, SchemaOptions
from strangler.search.sink import SinkOptions, run_day
from strangler.settings import get_settings

CODE_VERSION = "1"
GROUP = "search"
SERVICE_VERSION = f"search-service/{CODE_VERSION}"


def weaviate_key(aggregate_type: str) -> dg.AssetKey:
    return dg.AssetKey(["weaviate", aggregate_type])


def kafka_key(aggregate_type: str) -> dg.AssetKey:
    return dg.AssetKey(["kafka", TOPICS[aggregate_type]])


_settings = get_settings()


class WeaviateSinkConfig(dg.Config):
    collection_prefix: str = Field(
        default=_settings.weaviate_collection_prefix, description="Prefix of the collection names."
    )
    max_failure_ratio: float = Field(
        default=_settings.weaviate_max_failure_ratio,
        ge=0,
        description="Fail the run when failures / objects exceed this.",
    )
    upload_batch: int = Field(
        default=_settings.weaviate_upload_batch,
        ge=1,
        description="Objects per Weaviate batch request.",
    )
    encode_batch: int = Field(
        default=_settings.embedding_encode_batch, ge=1, description="Texts per encode step."
    )
    chunk_overlap: int = Field(
        default=_settings.embedding_chunk_overlap, ge=0, description="Word pieces shared by chunks."
    )
    use_cache: bool = Field(default=True, description="Use the (model, text hash) cache.")
    distance: str = Field(default=_settings.weaviate_distance, description="HNSW distance metric.")
    ef_construction: int = Field(default=_settings.weaviate_ef_construction, ge=4)
    max_connections: int = Field(default=_settings.weaviate_max_connections, ge=4)
    ef: int = Field(default=_settings.weaviate_ef, description="-1: dynamic ef.")
    replication_factor: int = Field(default=_settings.weaviate_replication_factor, ge=1)
    multi_tenancy: bool = Field(
        default=_settings.weaviate_multi_tenancy,
        description="Create Document and OcrPage with one tenant per customer.",
    )


class SemanticSearchCheckConfig(dg.Config):
    collection_prefix: str = Field(
        default=_settings.weaviate_collection_prefix, description="Prefix of the collection names."
    )
    sample_size: int = Field(default=_settings.search_check_sample_size, ge=1)
    k: int = Field(default=_settings.search_check_k, ge=1)
    min_recall: float = Field(default=_settings.search_check_min_recall, ge=0, le=1)
    category_query: str = Field(default=_settings.search_check_category_query)
    category: str = Field(default=_settings.search_check_category)
    min_category_precision: float = Field(
        default=_settings.search_check_min_category_precision, ge=0, le=1
    )


def cached_encoder(
    embedder: EmbedderResource, chunk_overlap: int, use_cache: bool
) -> CachedEncoder:
    encoder = CachedEncoder(embedder, None, chunk_overlap=chunk_overlap)
    if use_cache:
        encoder.cache = EmbeddingCache(
            embedder.cache_path / "cache.sqlite3", encoder.cache_model_key, embedder.dimension
        )
    return encoder


_DEPS = {
    "Customer": [kafka_key("Customer")],
    "Document": [kafka_key("Document"), weaviate_key("Customer")],
    "OcrPage": [kafka_key("OcrPage"), weaviate_key("Document")],
}
_DESCRIPTIONS = {
    "Customer": "Customers (name, plan, country) with a vector of that text.",
    "Document": "Documents (title, category, status, page count) -> Customer; vector of title and category.",
    "OcrPage": "OCR pages -> Document; vector of the page text (long pages chunked, mean-pooled).",
}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            weaviate_key(t),
            freshness_policy=freshness_policy(),
            deps=_DEPS[t],
            description=_DESCRIPTIONS[t],
            group_name=GROUP,
            kinds={"weaviate"},
            owners=OWNERS,
            code_version=CODE_VERSION,
            skippable=True,
        )
        for t in TYPES
    ],
    partitions_def=daily_partitions,
    can_subset=True,
    name="weaviate_collections",
)
def weaviate_collections(
    context: dg.AssetExecutionContext,
    config: WeaviateSinkConfig,
    postgres: PostgresResource,
    kafka: KafkaResource,
    weaviate: WeaviateResource,
    embedder: EmbedderResource,
):  # type: ignore[no-untyped-def]
    """Upsert day D into each selected collection; delete D's objects the source dropped."""
    types = [t for t in TYPES if weaviate_key(t) in context.selected_asset_keys]
    options = SinkOptions(
        names=CollectionNames(config.collection_prefix),
        schema=SchemaOptions(
            distance=config.distance,
            ef_construction=config.ef_construction,
            max_connections=config.max_connections,
            ef=config.ef,
            replication_factor=config.replication_factor,
            multi_tenancy=config.multi_tenancy,
        ),
        upload_batch=config.upload_batch,
        encode_batch=config.encode_batch,
        max_failure_ratio=config.max_failure_ratio,
        version=SERVICE_VERSION,
    )
    encoder = cached_encoder(embedder, config.chunk_overlap, config.use_cache)
    with postgres.connection() as conn, weaviate.client() as client:
        result = run_day(
            conn=conn,
            client=client,
            encoder=encoder,
            kafka=kafka,
            day=context.partition_key,
            run_id=context.run.run_id,
            options=options,
            types=types,
            log=context.log.info,
        )
    if result.exceeded:
        raise dg.Failure(
            description=(
                f"{result.failed} of {result.objects} objects of {result.day} failed (threshold "
                f"{config.max_failure_ratio:.2%}); see migration_state.failed_entities"
            ),
            metadata={"failed": result.failed, "objects": result.objects},
        )
    if result.failed:
        context.log.warning(
            f"{result.failed} objects of {result.day} failed (recorded in failed_entities)"
        )
    failed_by_collection: dict[str, int] = {}
    for f in result.failures:
        failed_by_collection[f.collection] = failed_by_collection.get(f.collection, 0) + 1
    for t in types:
        r = result.per_type[t]
        yield dg.MaterializeResult(
            asset_key=weaviate_key(t),
            metadata={
                "collection": r.collection,
                "objects": r.objects,
                "upserted": r.loaded,
                "references": r.references,
                "dangling_references": r.dangling_references,
                "deleted_stale": r.deleted,
                "tenants": r.tenants,
                "failures": failed_by_collection.get(r.collection, 0),
                "vectors_per_s": dg.FloatMetadataValue(round(r.vectors_per_s, 1)),
                "cache_hits": r.encode.cache_hits,
                "encoded": r.encode.encoded,
                "long_texts_chunked": r.encode.long_texts,
                "model_s": dg.FloatMetadataValue(round(r.encode.model_s, 3)),
                "model": result.model,
                "dimension": result.dimension,
                "source": result.source,
                "events": result.events,
                "kafka_duplicates": result.duplicates,
                "schema_drift": dg.JsonMetadataValue(result.schema.drift),
            },
        )


def _semantic_check(aggregate_type: str) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=weaviate_key(aggregate_type),
        name="semantic_search_works",
        partitions_def=daily_partitions,
        description=(
            "A seeded sample of the day's objects is found again by its own text (recall@k); "
            "a category query returns mostly that category."
        ),
    )
    def check(
        context: dg.AssetCheckExecutionContext,
        config: SemanticSearchCheckConfig,
        weaviate: WeaviateResource,
        embedder: EmbedderResource,
    ) -> dg.AssetCheckResult:
        names = CollectionNames(config.collection_prefix)
        encoder = cached_encoder(embedder, 32, True)
        options = QualityOptions(
            sample_size=config.sample_size,
            k=config.k,
            min_recall=config.min_recall,
            category_query=config.category_query,
            category=config.category,
            min_category_precision=config.min_category_precision,
        )
        with weaviate.client() as client:
            result = check_day(
                client, encoder, names, aggregate_type, context.partition_key, options
            )
        return dg.AssetCheckResult(
            passed=result.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata=result.metadata(),
        )

    return check


weaviate_assets = [weaviate_collections]
with partitioned_checks():
    weaviate_checks = [_semantic_check(t) for t in TYPES]
