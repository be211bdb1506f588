"""A loaded masked language model (BERT family): fill-mask and sentence embeddings from text.

`genloom.load(run)` returns a `MaskedLanguageModel` for a `bert` run or a local Hugging Face BERT
directory. It joins the model and its WordPiece tokenizer: text in, fillers or vectors out.

```python
import genloom as gl
lm = gl.load("runs/bert")
lm.fill_mask("To be or not to [MASK]", top_k=5)   # [[("be", 0.41), ...]] one list per [MASK]
lm.embed(["good morrow", "good night"])            # (2, n_embd) mean-pooled over non-pad tokens
```
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from genloom.data.masking import MaskedTextDataConfig, MaskedTokenData, MaskingTables
from genloom.errors import UserError
from genloom.models.bert import Bert
from genloom.tokenizers import Tokenizer, WordPieceTokenizer

MASK = "[MASK]"
EMBED_BATCH = 32  # texts per forward pass in `embed`


def masked_batches(
    tokenizer: Tokenizer, train: torch.Tensor, val: torch.Tensor, block_size: int, cfg: MaskedTextDataConfig
) -> MaskedTokenData:
    """The trainer's batch source for a masked LM: framed windows, masked by the BERT recipe."""
    if not isinstance(tokenizer, WordPieceTokenizer):
        raise UserError(f"data.tokenizer: a masked LM needs a WordPiece tokenizer, got {tokenizer.kind!r}")
    tables = MaskingTables.build(tokenizer.vocab_size, tokenizer.mask_id, tokenizer.special_ids, tokenizer.continuation)
    return MaskedTokenData(train, val, block_size, tokenizer.cls_id, tokenizer.sep_id, tables, cfg)


class MaskedLanguageModel:
    """A BERT model with its tokenizer; `config` is the run's `RunConfig` (None for a Hugging Face directory)."""

    def __init__(self, model: Bert, tokenizer: Tokenizer, config: Any, run_dir: Path) -> None:
        if not isinstance(tokenizer, WordPieceTokenizer):
            raise UserError(f"{run_dir}: a masked LM needs a WordPiece tokenizer.json, got {tokenizer.kind!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.config = config
        self.run_dir = run_dir

    def _batch(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """`[CLS] text [SEP]` for each text, right-padded: ids and attention mask, each (B, T)."""
        tok, limit = self.tokenizer, self.model.config.block_size
        rows = [[tok.cls_id, *tok.encode(text), tok.sep_id] for text in texts]
        for text, row in zip(texts, rows, strict=True):
            if len(row) > limit:
                raise UserError(
                    f"text of {len(row)} tokens ([CLS] and [SEP] included) is longer than the model's context "
                    f"of {limit} (block_size): {text[:40]!r}..."
                )
        T = max(len(row) for row in rows)
        ids = torch.full((len(rows), T), tok.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), T), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        return ids, mask

    @torch.no_grad()
    def fill_mask(self, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
        """The `top_k` most probable tokens for each [MASK] in `text`, with their probabilities."""
        if top_k <= 0:
            raise UserError(f"top_k must be a positive integer, got {top_k}")
        if MASK not in text:
            raise UserError(f"fill-mask: the text has no {MASK} token; write {MASK} where a word is to be filled in")
        ids, mask = self._batch([text])
        logits = self.model(ids, attention_mask=mask)[0]  # (T, V)
        positions = (ids[0] == self.tokenizer.mask_id).nonzero().squeeze(1)
        probs = logits[positions].float().softmax(dim=-1)  # (n_masks, V)
        top = probs.topk(min(top_k, probs.shape[-1]), dim=-1)
        return [
            [(self.tokenizer.id_to_token(int(i)), float(p)) for p, i in zip(row_p, row_i, strict=True)]
            for row_p, row_i in zip(top.values, top.indices, strict=True)
        ]

    @torch.no_grad()
    def embed(self, texts: str | Sequence[str]) -> torch.Tensor:
        """Sentence embeddings (N, n_embd): last hidden states mean-pooled over each text's non-pad tokens."""
        if isinstance(texts, str):
            texts = [texts]
        if not texts:
            raise UserError("embed: give at least one text")
        out = []
        for start in range(0, len(texts), EMBED_BATCH):
            ids, mask = self._batch(texts[start : start + EMBED_BATCH])
            out.append(self.model.embed(ids, mask))
        return torch.cat(out)
