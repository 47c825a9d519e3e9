"""The product never knows the sample monolith's names: everything follows from the spec.

Outside `strangler/sample/` (the sample's spec, analytics SQL, seed and vocabulary) no source
file names the sample's tables, topics or event types, so a user's estate gets nothing of
the sample's shape by accident.
"""

from __future__ import annotations

import re
from pathlib import Path

from strangler.settings import SAMPLE_SPEC
from strangler.spec import load_spec

PRODUCT = Path(__file__).resolve().parents[2] / "strangler"
SAMPLE = PRODUCT / "sample"


def sample_names() -> set[str]:
    """Names only the sample has: its tables with an underscore or a plural the issue named,
    its topics and its event types (named and renamed)."""
    spec = load_spec(SAMPLE_SPEC)
    names = {"ocr_pages", "ocrpage", "processing_jobs", "customers", "DocumentUploaded"}
    names |= {a.source.table for a in spec.aggregates if "_" in a.source.table}
    names |= set(spec.topics.values())
    for aggregate in spec.aggregates:
        events = aggregate.events
        declared = [events.import_.type, events.change.type, events.delete.type]
        names |= {t for t in declared if t} | {n.type for n in events.named}
    return names


def test_no_product_module_names_the_sample() -> None:
    pattern = re.compile("|".join(re.escape(n) for n in sorted(sample_names())), re.IGNORECASE)
    found = [
        f"{path.relative_to(PRODUCT.parent)}:{number}: {line.strip()}"
        for path in sorted(PRODUCT.rglob("*.py"))
        if SAMPLE not in path.parents
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if pattern.search(line)
    ]
    assert not found, "the product names the sample:\n" + "\n".join(found)
