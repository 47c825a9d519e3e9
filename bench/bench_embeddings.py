"""Benchmark: every embedding backend on the sample pages, texts/s and cosine against fp32 torch.

    .venv/bin/python -m bench.bench_embeddings --pages 1000 --rounds 3

The pages are the sample monolith's OCR pages (about 84 words each). Each backend encodes
all of them once for fidelity (cosine of each page's vector against fp32 PyTorch's, minimum
and mean over every page), then the timed rounds run the backends interleaved (round 1: every
backend, round 2: every backend, ...) so a burst of load from other work on a shared machine
hits them all alike; a backend's figure is its best round. Exports and compiled models go to a
throwaway cache directory, so the first-use build is timed too (`build s`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.common import page_texts
from strangler.resources.embeddings import BACKENDS, EmbedderResource

FIDELITY = 0.999
"""A backend may be the default only if every page's cosine against fp32 torch reaches this."""


@dataclass
class BackendFigures:
    backend: str
    texts_per_s: float
    speedup_vs_torch: float
    min_cosine: float
    mean_cosine: float
    build_s: float
    eligible: bool


def measure(pages: int, rounds: int, timed_pages: int, backends: list[str]) -> list[BackendFigures]:
    texts = page_texts(pages)
    timed = texts[:timed_pages]
    with tempfile.TemporaryDirectory(prefix="bench-embeddings-") as tmp:
        embedders = {b: EmbedderResource(backend=b, cache_dir=str(Path(tmp) / b)) for b in backends}
        build: dict[str, float] = {}
        for backend, embedder in embedders.items():
            t0 = time.perf_counter()
            embedder.encode(texts[:2])
            build[backend] = time.perf_counter() - t0
        vectors = {b: e.encode(texts) for b, e in embedders.items()}
        reference = (
            vectors["torch"]
            if "torch" in vectors
            else EmbedderResource(backend="torch", cache_dir=tmp).encode(texts)
        )
        best: dict[str, float] = dict.fromkeys(backends, float("inf"))
        for _ in range(rounds):
            for backend, embedder in embedders.items():
                t0 = time.perf_counter()
                embedder.encode(timed)
                best[backend] = min(best[backend], time.perf_counter() - t0)
    torch_rate = len(timed) / best["torch"] if "torch" in best else float("nan")
    figures = []
    for backend in backends:
        cosines = np.sum(vectors[backend] * reference, axis=1)
        rate = len(timed) / best[backend]
        figures.append(
            BackendFigures(
                backend=backend,
                texts_per_s=rate,
                speedup_vs_torch=rate / torch_rate,
                min_cosine=float(cosines.min()),
                mean_cosine=float(cosines.mean()),
                build_s=build[backend],
                eligible=bool(cosines.min() >= FIDELITY),
            )
        )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1_000, help="Sample pages for fidelity.")
    parser.add_argument("--timed-pages", type=int, default=512, help="Pages per timed round.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--json", type=Path, help="Also write the rows to this JSON file.")
    args = parser.parse_args()
    backends = args.backends.split(",")
    figures = measure(args.pages, args.rounds, min(args.timed_pages, args.pages), backends)
    print(
        f"{'backend':<14} {'texts/s':>8} {'x torch':>8} {'min cos':>8} {'mean cos':>9}"
        f" {'build s':>8}  cosine >= {FIDELITY} on all {args.pages} pages"
    )
    for f in figures:
        print(
            f"{f.backend:<14} {f.texts_per_s:>8.1f} {f.speedup_vs_torch:>8.2f} {f.min_cosine:>8.5f}"
            f" {f.mean_cosine:>9.5f} {f.build_s:>8.1f}  {'yes' if f.eligible else 'no'}"
        )
    eligible = [f for f in figures if f.eligible]
    if eligible:
        print(f"fastest eligible: {max(eligible, key=lambda f: f.texts_per_s).backend}")
    if args.json:
        args.json.write_text(json.dumps([asdict(f) for f in figures], indent=2))


if __name__ == "__main__":
    main()
