"""The JSON Schema of the spec file, generated from the pydantic models.

Editors (yaml-language-server, VS Code, JetBrains) read the committed copy named in each spec's
first line, so a misspelt key is underlined while typing; a unit test keeps that copy equal to
what the models generate.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from strangler.spec.models import EstateSpec

SCHEMA_FILE = Path(__file__).with_name("strangler.schema.json")
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
REGENERATE = "strangler spec schema -o strangler/spec/strangler.schema.json"


def spec_json_schema() -> dict[str, Any]:
    """The schema of a spec file as written (aliases such as `schema`, `import`, `as`)."""
    schema = EstateSpec.model_json_schema(by_alias=True)
    schema["$schema"] = SCHEMA_DIALECT
    schema["title"] = "Strangler estate spec (strangler.yaml)"
    return schema


def render_schema(schema: dict[str, Any] | None = None) -> str:
    """Stable text of the schema: indented, sorted keys, trailing newline (diff-friendly)."""
    return (
        json.dumps(spec_json_schema() if schema is None else schema, indent=2, sort_keys=True)
        + "\n"
    )
