"""`weaviate/<aggregate>` for each aggregate of the spec with `search:`: the search-service's day D.

Thin layer over `strangler.search`: one step reads D's events once (Kafka offset ranges of D,
or the event store when they are gone), embeds and upserts the collections in reference order
(parents first), and reports each as its own materialization. A partitioned check per
collection asks whether semantic search works on D (recall of its own texts and the spec's
`search.queries` probes).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from pydantic import Field

from strangler.assets.kafka_topics import kafka_topic_key
from strangler.assets.monolith import OWNERS
from strangler.assets.policies import freshness_policy
from strangler.dagster_preview import partitioned_checks, range_backfills
from strangler.partitions import (
    build_partitions,
    log_check_evaluations,
    range_backfill_policy,
    run_partition_keys,
)
from strangler.resources.embeddings import EmbedderResource
from strangler.resources.kafka import KafkaResource
from strangler.resources.postgres import PostgresResource
from strangler.resources.weaviate import WeaviateResource
from strangler.search.embedding_cache import CachedEncoder, EmbeddingCache
from strangler.search.quality import QualityOptions, check_day
from strangler.search.schema import (
    CollectionNames,
    SchemaOptions,
    SearchDeclarationError,
    declare_from_store,
)
from strangler.search.sink import DayResult, SinkOptions, run_range
from strangler.settings import get_settings
from strangler.spec import current_spec
from strangler.spec.models import Aggregate, EstateSpec

CODE_VERSION = "1"
GROUP = "search"
SEMANTIC_CHECK = "semantic_search_works"
SERVICE_VERSION = f"search-service/{CODE_VERSION}"


def weaviate_key(aggregate: str) -> dg.AssetKey:
    return dg.AssetKey(["weaviate", aggregate])


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
    use_cache: bool = Field(default=True, description="Use the (model, text hash) cache.")
    distance: str = Field(default=_settings.weaviate_distance, description="HNSW distance metric.")
    ef_construction: int = Field(default=_settings.weaviate_ef_construction, ge=4)
    max_connections: int = Field(default=_settings.weaviate_max_connections, ge=4)
    ef: int = Field(default=_settings.weaviate_ef, description="-1: dynamic ef.")
    replication_factor: int = Field(default=_settings.weaviate_replication_factor, ge=1)
    multi_tenancy: bool = Field(
        default=_settings.weaviate_multi_tenancy,
        description="Create collections with a search.tenant key with one tenant per key.",
    )


class SemanticSearchCheckConfig(dg.Config):
    collection_prefix: str = Field(
        default=_settings.weaviate_collection_prefix, description="Prefix of the collection names."
    )
    sample_size: int = Field(default=_settings.search_check_sample_size, ge=1)
    k: int = Field(default=_settings.search_check_k, ge=1)
    min_recall: float = Field(default=_settings.search_check_min_recall, ge=0, le=1)


def cached_encoder(
    embedder: EmbedderResource, chunk_overlap: int, use_cache: bool
) -> CachedEncoder:
    encoder = CachedEncoder(embedder, None, chunk_overlap=chunk_overlap)
    if use_cache:
        encoder.cache = EmbeddingCache(
            embedder.cache_path / "cache.sqlite3", encoder.cache_model_key, embedder.dimension
        )
    return encoder


def _deps(spec: EstateSpec, aggregate: Aggregate) -> list[dg.AssetKey]:
    """The aggregate's topic and its searchable parents' collections (reference targets)."""
    searchable = {a.name for a in spec.searchable}
    parents = [p.aggregate for p in aggregate.parents if p.aggregate in searchable]
    return [kafka_topic_key(spec.topic_of(aggregate.name)), *(weaviate_key(p) for p in parents)]


def _description(aggregate: Aggregate) -> str:
    search = aggregate.search
    assert search is not None
    return (
        f"{aggregate.name} rows of {aggregate.source.qualified}, vector of {search.text!r};"
        " objects the source deleted are removed."
    )


def build_weaviate_assets(
    spec: EstateSpec,
) -> tuple[list[dg.AssetsDefinition], list[dg.AssetChecksDefinition]]:
    """The collections of `spec.searchable` as one multi-asset (one asset per collection) and
    a partitioned "semantic search works" check per collection; nothing without `search:`."""
    searchable = [a.name for a in spec.searchable]
    if not searchable:
        return [], []
    reference = [a.name for a in spec.searchable if a.is_reference]
    if reference:
        raise SearchDeclarationError(
            f"{reference}: search: is for aggregates partitioned by time; reference data has no"
            " partition to load"
        )
    daily = build_partitions(spec)

    with range_backfills():  # backfill policies are a Dagster 1.13 beta

        @dg.multi_asset(
            specs=[
                dg.AssetSpec(
                    weaviate_key(a.name),
                    freshness_policy=freshness_policy(),
                    deps=_deps(spec, a),
                    description=_description(a),
                    group_name=GROUP,
                    kinds={"weaviate"},
                    owners=OWNERS,
                    code_version=CODE_VERSION,
                    skippable=True,
                )
                for a in spec.searchable
            ],
            partitions_def=daily,
            backfill_policy=range_backfill_policy(),
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
            """Upsert each partition of the run into each selected collection; delete the
            partition's objects the source dropped."""
            yield from _load_partitions(
                context, spec, searchable, config, postgres, kafka, weaviate, embedder
            )

    with partitioned_checks():
        checks = [_semantic_check(spec, a, daily) for a in searchable]
    return [weaviate_collections], checks


def _sink_options(config: WeaviateSinkConfig) -> SinkOptions:
    return SinkOptions(
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


def _load_partitions(
    context: dg.AssetExecutionContext,
    spec: EstateSpec,
    searchable: list[str],
    config: WeaviateSinkConfig,
    postgres: PostgresResource,
    kafka: KafkaResource,
    weaviate: WeaviateResource,
    embedder: EmbedderResource,
) -> Iterator[dg.MaterializeResult]:
    """One partition, or every partition of a range run, one after the other with one client,
    one model and the collections ensured once; in a range each partition gets its own
    metadata. A partition whose failures exceed the threshold fails the run (the partitions
    before it stay loaded and recorded)."""
    aggregates = [a for a in searchable if weaviate_key(a) in context.selected_asset_keys]
    keys = run_partition_keys(context)
    in_range = len(keys) > 1

    def reported(result: DayResult) -> None:
        if result.failed:
            context.log.warning(
                f"{result.failed} objects of {result.day} failed (recorded in failed_entities)"
            )
        if in_range:
            for a in aggregates:
                context.add_asset_metadata(
                    _metadata(result, a),
                    asset_key=weaviate_key(a),
                    partition_key=result.day,
                )

    encoder = cached_encoder(embedder, 32, config.use_cache)
    with (
        postgres.connection() as conn,
        weaviate.client() as client,
        _declaration_failure(),
    ):
        results = run_range(
            conn=conn,
            client=client,
            encoder=encoder,
            kafka=kafka,
            spec=spec,
            days=keys,
            run_id=context.run.run_id,
            options=_sink_options(config),
            aggregates=aggregates,
            log=context.log.info,
            on_day=reported,
        )
    last = results[-1]
    if last.exceeded:
        raise dg.Failure(
            description=(
                f"{last.failed} of {last.objects} objects of {last.day} failed"
                f" (threshold {config.max_failure_ratio:.2%}); see"
                " migration_state.failed_entities"
            ),
            metadata={"failed": last.failed, "objects": last.objects},
        )
    for a in aggregates:
        if not in_range:
            yield dg.MaterializeResult(asset_key=weaviate_key(a), metadata=_metadata(last, a))
            continue
        yield dg.MaterializeResult(
            asset_key=weaviate_key(a),
            metadata={
                "range": f"{keys[0]}..{keys[-1]}",
                "range_partitions": len(keys),
                "range_objects": sum(r.per_type[a].objects for r in results),
                "range_upserted": sum(r.per_type[a].loaded for r in results),
                "range_deleted_stale": sum(r.per_type[a].deleted for r in results),
                "range_failures": sum(
                    1
                    for r in results
                    for f in r.failures
                    if f.collection == last.per_type[a].collection
                ),
            },
        )


@contextmanager
def _declaration_failure() -> Iterator[None]:
    """A spec the collections cannot be declared from (or an event store without the column
    types yet) fails the step with the one line saying what to do, not a traceback."""
    try:
        yield
    except SearchDeclarationError as exc:
        raise dg.Failure(description=str(exc)) from None


def _metadata(result: DayResult, aggregate: str) -> dict[str, Any]:
    """One partition's load of one collection as materialization metadata."""
    r = result.per_type[aggregate]
    return {
        "collection": r.collection,
        "objects": r.objects,
        "upserted": r.loaded,
        "references": r.references,
        "dangling_references": r.dangling_references,
        "deleted_stale": r.deleted,
        "tenants": r.tenants,
        "failures": sum(1 for f in result.failures if f.collection == r.collection),
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
    }


def _semantic_check(
    spec: EstateSpec, aggregate: str, daily: dg.PartitionsDefinition
) -> dg.AssetChecksDefinition:
    @dg.multi_asset_check(
        specs=[
            dg.AssetCheckSpec(
                SEMANTIC_CHECK,
                asset=weaviate_key(aggregate),
                partitions_def=daily,
                description=(
                    "A seeded sample of the day's objects is found again by its own text"
                    " (recall@k); each of the spec's search.queries returns mostly objects with"
                    " the expected values."
                ),
            )
        ],
        # Optional output: a range run logs its evaluations per partition and yields none.
        can_subset=True,
        # The op name an `@asset_check` gave it: run configs name it.
        name=f"weaviate__{aggregate}_{SEMANTIC_CHECK}",
    )
    def check(
        context: dg.AssetCheckExecutionContext,
        config: SemanticSearchCheckConfig,
        postgres: PostgresResource,
        weaviate: WeaviateResource,
        embedder: EmbedderResource,
    ) -> Iterator[dg.AssetCheckResult]:
        names = CollectionNames(config.collection_prefix)
        encoder = cached_encoder(embedder, 32, True)
        options = QualityOptions(
            sample_size=config.sample_size, k=config.k, min_recall=config.min_recall
        )
        with postgres.connection() as conn, _declaration_failure():
            decls = declare_from_store(conn, spec, names)
        decl = next(d for d in decls if d.aggregate == aggregate)
        keys = run_partition_keys(context)
        with weaviate.client() as client:
            results = [check_day(client, encoder, decl, key, options) for key in keys]
        if len(keys) > 1:  # a range run: each partition's result under its own partition
            log_check_evaluations(
                context,
                [
                    dg.AssetCheckEvaluation(
                        asset_key=weaviate_key(aggregate),
                        check_name=SEMANTIC_CHECK,
                        passed=result.passed,
                        partition=key,
                        metadata=result.metadata(),
                        severity=dg.AssetCheckSeverity.ERROR,
                    )
                    for key, result in zip(keys, results, strict=True)
                ],
            )
            return
        yield dg.AssetCheckResult(
            asset_key=weaviate_key(aggregate),
            check_name=SEMANTIC_CHECK,
            passed=results[0].passed,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata=results[0].metadata(),
        )

    return check


def __getattr__(name: str) -> Any:
    """`weaviate_assets`, `weaviate_checks` and `weaviate_collections` (the multi-asset, None
    without `search:`) of the settings' spec, built on first use rather than at import."""
    if name in ("weaviate_assets", "weaviate_checks", "weaviate_collections"):
        assets, checks = build_weaviate_assets(current_spec())
        return {
            "weaviate_assets": assets,
            "weaviate_checks": checks,
            "weaviate_collections": assets[0] if assets else None,
        }[name]
    raise AttributeError(name)
