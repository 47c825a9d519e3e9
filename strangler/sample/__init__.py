"""The sample monolith: a deterministic, deliberately dirty document-processing database.

The generator is ``strangler.sample.seed.seed``; it is not re-exported here, so the name
``strangler.sample.seed`` keeps meaning the module (``mock.patch`` and ``import ... as`` rely
on that).
"""

from strangler.sample.dirt import DirtKind
from strangler.sample.seed import SeedReport

__all__ = ["DirtKind", "SeedReport"]
