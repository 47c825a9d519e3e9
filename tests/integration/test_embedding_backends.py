"""The exported embedding backends against the PyTorch reference, with the real model.

The default backend (and every backend allowed to be the default) must match fp32 torch with a
cosine >= 0.999 on every sample page; `onnx` must be the same function as torch (only float
rounding apart), `onnx-int8` close enough for search; exports are built once per cache
directory, and the embedding cache must never hand one backend's vectors to another.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import onnx
import pytest

from bench.common import page_texts
from strangler.assets.weaviate_collections import cached_encoder
from strangler.resources.embeddings import DEFAULT_BACKEND, EmbedderResource, ffn_output_matmuls
from strangler.settings import Settings

TEXTS = page_texts(200)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("embeddings")


@pytest.fixture(scope="module")
def reference(cache_dir: Path) -> np.ndarray:
    """fp32 PyTorch vectors of TEXTS: what every other backend is measured against."""
    return EmbedderResource(backend="torch", cache_dir=str(cache_dir)).encode(TEXTS)


def _onnx_files(cache_dir: Path) -> dict[str, Path]:
    return {p.name: p for p in (cache_dir / "onnx").glob("*/*") if p.is_file()}


def _check_shape(embedder: EmbedderResource, vectors: np.ndarray) -> None:
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(TEXTS), embedder.dimension) == (len(TEXTS), 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_default_backend_matches_fp32_torch_on_every_sample_page(
    cache_dir: Path, reference: np.ndarray
) -> None:
    assert Settings().embedding_backend == DEFAULT_BACKEND == EmbedderResource().backend
    embedder = EmbedderResource(cache_dir=str(cache_dir))
    vectors = embedder.encode(TEXTS)
    _check_shape(embedder, vectors)
    cosines = np.sum(vectors * reference, axis=1)
    assert cosines.min() >= 0.999, (DEFAULT_BACKEND, cosines.min())


@pytest.mark.parametrize("backend", ["openvino", "openvino-bf16"])
def test_openvino_matches_torch_and_compiles_once(
    backend: str, cache_dir: Path, reference: np.ndarray
) -> None:
    vectors = EmbedderResource(backend=backend, cache_dir=str(cache_dir)).encode(TEXTS)
    cosines = np.sum(vectors * reference, axis=1)
    assert cosines.min() >= (0.9999 if backend == "openvino" else 0.999), cosines.min()
    # The ONNX export is shared with the onnx backends; OpenVINO keeps its compiled blobs.
    assert (cache_dir / "openvino").is_dir() and any((cache_dir / "openvino").iterdir())
    assert {p.name for p in (cache_dir / "onnx").glob("*/*.onnx")} >= {"model.onnx"}
    again = EmbedderResource(backend=backend, cache_dir=str(cache_dir)).encode(TEXTS[:8])
    assert np.allclose(again, vectors[:8], atol=1e-3 if backend.endswith("bf16") else 1e-5)


def test_onnx_matches_torch_and_export_is_reused(cache_dir: Path, reference: np.ndarray) -> None:
    first = EmbedderResource(backend="onnx", cache_dir=str(cache_dir))
    vectors = first.encode(TEXTS)
    _check_shape(first, vectors)
    cosines = np.sum(vectors * reference, axis=1)
    assert cosines.min() >= 0.9999, cosines.min()

    files = _onnx_files(cache_dir)
    assert set(files) == {"model.onnx"}, files  # no temp file left behind, no int8 yet
    exported = files["model.onnx"].stat().st_mtime_ns

    second = EmbedderResource(backend="onnx", cache_dir=str(cache_dir))
    again = second.encode(TEXTS[:8])
    assert _onnx_files(cache_dir)["model.onnx"].stat().st_mtime_ns == exported
    assert np.allclose(again, vectors[:8], atol=1e-5)


def test_onnx_int8_is_close_to_torch_and_keeps_ffn_outputs_fp32(
    cache_dir: Path, reference: np.ndarray
) -> None:
    first = EmbedderResource(backend="onnx-int8", cache_dir=str(cache_dir))
    vectors = first.encode(TEXTS)
    _check_shape(first, vectors)
    cosines = np.sum(vectors * reference, axis=1)
    assert cosines.min() >= 0.99, cosines.min()
    assert not np.allclose(vectors, reference, atol=1e-4)  # it really is quantized

    files = _onnx_files(cache_dir)
    int8 = files["model.int8-ffn-out-fp32.onnx"]
    # One fp32 projection per transformer layer is excluded, and left as a float MatMul.
    excluded = ffn_output_matmuls(onnx.load(str(files["model.onnx"])))
    assert len(excluded) == 6, excluded
    quantized = onnx.load(str(int8))
    kept = {n.name for n in quantized.graph.node if n.op_type == "MatMul"}
    assert set(excluded) <= kept
    assert any(
        n.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for n in quantized.graph.node
    )

    mtimes = {name: p.stat().st_mtime_ns for name, p in files.items()}
    second = EmbedderResource(backend="onnx-int8", cache_dir=str(cache_dir))
    again = second.encode(TEXTS[:8])
    assert {n: p.stat().st_mtime_ns for n, p in _onnx_files(cache_dir).items()} == mtimes
    # Dynamic quantization scales activations per batch, so a text's int8 vector depends on its
    # batch mates: compare the same batch through both sessions, not against the 200-text run.
    assert np.allclose(again, first.encode(TEXTS[:8]), atol=1e-6)
    assert np.sum(again * reference[:8], axis=1).min() >= 0.99


def test_cache_keys_by_backend(cache_dir: Path) -> None:
    texts = TEXTS[:20]
    torch_enc = cached_encoder(
        EmbedderResource(backend="torch", cache_dir=str(cache_dir)), 32, True
    )
    int8_enc = cached_encoder(
        EmbedderResource(backend="onnx-int8", cache_dir=str(cache_dir)), 32, True
    )
    assert torch_enc.cache is not None and int8_enc.cache is not None
    assert torch_enc.cache.path == int8_enc.cache.path  # one file, two keys
    assert torch_enc.cache_model_key != int8_enc.cache_model_key

    torch_vectors, stats = torch_enc.encode(texts)
    assert stats.encoded == len(texts) and stats.cache_hits == 0
    int8_vectors, stats = int8_enc.encode(texts)
    # The torch vectors of the same texts are in the cache, but not under int8's key.
    assert stats.encoded == len(texts) and stats.cache_hits == 0
    assert not np.array_equal(torch_vectors, int8_vectors)

    for enc, expected in ((torch_enc, torch_vectors), (int8_enc, int8_vectors)):
        vectors, stats = enc.encode(texts)
        assert stats.cache_hits == len(texts) and stats.encoded == 0
        assert np.array_equal(vectors, expected)
    with sqlite3.connect(torch_enc.cache.path) as conn:
        rows = dict(
            conn.execute("SELECT model, count(*) FROM embeddings GROUP BY model").fetchall()
        )
    assert rows == {torch_enc.cache_model_key: len(texts), int8_enc.cache_model_key: len(texts)}
