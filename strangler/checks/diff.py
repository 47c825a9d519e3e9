"""Checksum key ranges, bisect only where they differ (the reladiff / data-diff approach).

The key space is event ids, split by their first hex digits: bucket "3f" holds every id whose
text starts with "3f". For each bucket both sides report (row count, sum of a 48-bit hash of
the id). Equal buckets are done; a differing bucket is split one hex digit deeper, until it is
small enough to list its ids on both sides. A clean day therefore costs one grouped scan per
side; a dirty day adds scans restricted to the few differing buckets.

The hash of an id is its last 12 hex digits as an integer. Our event ids are uuid5 (SHA-1 of
table, key and change), so those bits are already uniformly distributed and independent of the
leading digits used for bucketing: a hash every store can compute with string functions alone,
identically, without a per-row digest.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

HASH_HEX = 12
MAX_DEPTH = 8
"""Hex digits before the first dash of a UUID's text; deeper prefixes would contain '-'."""


@dataclass(frozen=True, slots=True)
class BucketSum:
    count: int
    hash_sum: int


def id_hash(event_id: str | uuid.UUID) -> int:
    """The per-id hash every side computes: the id's last 12 hex digits."""
    return int(str(event_id)[-HASH_HEX:], 16)


def summarize_ids(
    ids: Iterable[str], depth: int, prefixes: Sequence[str] | None = None
) -> dict[str, BucketSum]:
    """Bucket sums of ids in memory (the Kafka side, and tests)."""
    counts: Counter[str] = Counter()
    sums: Counter[str] = Counter()
    wanted = tuple(prefixes) if prefixes else None
    for i in ids:
        if wanted is not None and not i.startswith(wanted):
            continue
        b = i[:depth]
        counts[b] += 1
        sums[b] += id_hash(i)
    return {b: BucketSum(counts[b], sums[b]) for b in counts}


class DiffSide(Protocol):
    """One store's view of the key space."""

    label: str

    def summarize(self, depth: int, prefixes: Sequence[str] | None) -> dict[str, BucketSum]:
        """Per bucket of `depth` hex digits (only within `prefixes` if given): count, hash sum."""
        ...

    def ids(self, prefixes: Sequence[str]) -> Counter[str]:
        """Every id within the prefixes, with how often it occurs."""
        ...


@dataclass
class DiffResult:
    left_label: str
    right_label: str
    left_count: int = 0
    right_count: int = 0
    left_hash: int = 0
    right_hash: int = 0
    missing: list[str] = field(default_factory=list)
    """On the left (the reference), not on the right."""
    extra: list[str] = field(default_factory=list)
    """On the right, not on the left."""
    duplicated: list[str] = field(default_factory=list)
    """On both, more often on the right (or the left) than on the other."""
    buckets_compared: int = 0
    differing_buckets: list[str] = field(default_factory=list)
    levels: int = 0

    @property
    def equal(self) -> bool:
        return not (self.missing or self.extra or self.duplicated) and (
            self.left_count == self.right_count and self.left_hash == self.right_hash
        )

    def culprits(self, limit: int) -> list[str]:
        out = [f"missing:{i}" for i in self.missing[:limit]]
        out += [f"extra:{i}" for i in self.extra[: max(limit - len(out), 0)]]
        out += [f"duplicated:{i}" for i in self.duplicated[: max(limit - len(out), 0)]]
        return out


def bisect_diff(
    left: DiffSide,
    right: DiffSide,
    *,
    start_depth: int = 2,
    leaf_rows: int = 5_000,
    max_depth: int = MAX_DEPTH,
) -> DiffResult:
    """Compare two sides bucket by bucket, descending only into buckets that differ."""
    result = DiffResult(left.label, right.label)
    depth = max(1, min(start_depth, max_depth))
    prefixes: list[str] | None = None
    leaves: list[str] = []
    while True:
        lsum = left.summarize(depth, prefixes)
        rsum = right.summarize(depth, prefixes)
        result.levels += 1
        if prefixes is None:
            result.left_count = sum(b.count for b in lsum.values())
            result.right_count = sum(b.count for b in rsum.values())
            result.left_hash = sum(b.hash_sum for b in lsum.values())
            result.right_hash = sum(b.hash_sum for b in rsum.values())
        buckets = sorted(set(lsum) | set(rsum))
        result.buckets_compared += len(buckets)
        differing = [b for b in buckets if lsum.get(b) != rsum.get(b)]
        if not differing:
            break
        empty = BucketSum(0, 0)
        deeper: list[str] = []
        for b in differing:
            size = max(lsum.get(b, empty).count, rsum.get(b, empty).count)
            if size <= leaf_rows or depth >= max_depth:
                leaves.append(b)
            else:
                deeper.append(b)
        if not deeper:
            break
        prefixes = deeper
        depth += 1
    result.differing_buckets = sorted(leaves)
    if leaves:
        lids = left.ids(leaves)
        rids = right.ids(leaves)
        result.missing = sorted(i for i in lids if i not in rids)
        result.extra = sorted(i for i in rids if i not in lids)
        result.duplicated = sorted(
            {i for i in lids.keys() & rids.keys() if lids[i] != rids[i]}
            | {i for side in (lids, rids) for i, n in side.items() if n > 1}
        )
    return result
