"""`strangler.Estate`: Strangler as a Dagster component, declared in a project's `defs.yaml`.

    type: strangler.Estate
    attributes:
      spec: strangler.yaml      # the estate spec, relative to this defs.yaml's folder

The component builds exactly what the repository's own `definitions.py` builds
(`build_definitions(spec, settings)`): the same assets, checks, sensors, jobs and resources.
Where the stores are and how they are named (topic prefix, ClickHouse database, collection
prefix, credentials) stay `STRANGLER_*` settings rather than attributes, because the
`strangler` commands (check, rollback, migrate) and the runs read the same settings: one
place to set them, so the component and the CLI never disagree.

One estate per code location: the asset keys (`event_store/events`, `kafka/<topic>`, ...)
carry no estate name, so a second `strangler.Estate` belongs in another project.

`dg scaffold defs strangler.Estate estate --url postgresql://reader@replica/shop` writes the
defs.yaml and drafts the spec from the monolith's catalog, as `strangler spec init` does.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import dagster as dg
import yaml
from pydantic import BaseModel, Field

from strangler.definitions import build_definitions
from strangler.settings import get_settings
from strangler.spec import load_spec
from strangler.spec.catalog import oldest_day, read_catalog, read_only, user_schemas
from strangler.spec.init import draft_spec, own_day_columns
from strangler.spec.json_schema import SCHEMA_FILE

SPEC_FILE = "strangler.yaml"


class EstateScaffoldParams(BaseModel):
    """What `dg scaffold defs strangler.Estate` may be told."""

    url: str | None = Field(
        default=None,
        description="Monolith to draft the spec from (libpq URL; a read-only role suffices).",
    )
    schemas: list[str] | None = Field(
        default=None, description="Schemas to draft (default: every schema with tables)."
    )


def draft_from_database(url: str, schemas: list[str] | None, spec_file: Path) -> str:
    """The commented draft spec of the monolith at `url`, as `strangler spec init` writes it."""
    with read_only(url) as conn:
        catalog = read_catalog(conn, schemas or user_schemas(conn))
        chosen = list(schemas) if schemas else list(catalog.schemas)
        first = oldest_day(conn, own_day_columns(catalog, chosen))
    schema_ref = os.path.relpath(SCHEMA_FILE, spec_file.resolve().parent)
    return draft_spec(catalog, chosen, schema_ref, first)


class EstateScaffolder(dg.Scaffolder[EstateScaffoldParams]):
    """Writes defs.yaml naming the spec beside it, and drafts the spec when given a URL."""

    @classmethod
    def get_scaffold_params(cls) -> type[EstateScaffoldParams]:
        return EstateScaffoldParams

    def scaffold(self, request: dg.ScaffoldRequest[EstateScaffoldParams]) -> None:
        folder = request.target_path
        folder.mkdir(parents=True, exist_ok=True)
        spec_file = folder / SPEC_FILE
        params = request.params or EstateScaffoldParams()
        if params.url and not spec_file.exists():
            spec_file.write_text(draft_from_database(params.url, params.schemas, spec_file))
        (folder / "defs.yaml").write_text(
            yaml.safe_dump(
                {"type": request.type_name, "attributes": {"spec": SPEC_FILE}}, sort_keys=False
            )
        )


@dg.scaffold_with(EstateScaffolder)
class Estate(dg.Component, dg.Resolvable, dg.Model):
    """A monolith strangled into an event store, Kafka, ClickHouse and Weaviate, from its estate spec.

    Assets, asset checks, sensors and the rollback jobs all follow the spec; the stores come
    from the STRANGLER_* settings.
    """

    spec: str = Field(
        default=SPEC_FILE,
        description="The estate spec (strangler.yaml), relative to the folder of this defs.yaml.",
    )

    def spec_path(self, context: dg.ComponentLoadContext) -> Path:
        """The spec file: as given when absolute, else beside the defs.yaml."""
        path = Path(self.spec).expanduser()
        return path if path.is_absolute() else (context.path / path).resolve()

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        path = self.spec_path(context)
        configured = get_settings()
        if configured.spec.resolve() != path:
            warnings.warn(
                f"strangler.Estate builds {path}, but STRANGLER_SPEC names {configured.spec}:"
                " the `strangler` commands (check, rollback, migrate) read STRANGLER_SPEC;"
                f" set it to {path} so they see the same estate",
                stacklevel=2,
            )
        return build_definitions(load_spec(path), configured.model_copy(update={"spec": path}))
