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
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from strangler.definitions import build_definitions
from strangler.settings import get_settings
from strangler.spec import load_spec


class Estate(dg.Component, dg.Resolvable, dg.Model):
    """A monolith strangled into an event store, Kafka, ClickHouse and Weaviate, from its estate spec.

    Assets, asset checks, sensors and the rollback jobs all follow the spec; the stores come
    from the STRANGLER_* settings.
    """

    spec: str = Field(
        default="strangler.yaml",
        description="The estate spec (strangler.yaml), relative to the folder of this defs.yaml.",
    )

    def spec_path(self, context: dg.ComponentLoadContext) -> Path:
        """The spec file: as given when absolute, else beside the defs.yaml."""
        path = Path(self.spec).expanduser()
        return path if path.is_absolute() else (context.path / path).resolve()

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        path = self.spec_path(context)
        settings = get_settings().model_copy(update={"spec": path})
        return build_definitions(load_spec(path), settings)
