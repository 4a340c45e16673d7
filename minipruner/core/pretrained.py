"""Chapter 7 at the full scale: a pretrained language model the papers pruned, and WikiText-2.

SparseGPT (Frantar & Alistarh 2023) reports OPT models' WikiText-2 perplexity after one-shot
pruning; OPT-125M is the smallest of them and runs on one GPU in minutes. This module loads it
through Hugging Face ``transformers`` (the optional extra ``pip install -e '.[language]'``) as a
:class:`CausalLM`: a module whose ``forward(tokens)`` returns the logits, like
:class:`minipruner.core.language.TinyGPT`, so that :func:`minipruner.core.language.perplexity`,
:func:`minipruner.core.language.calibration_batch` and the layer-wise pruners of
:mod:`minipruner.methods.layerwise` treat both models alike. :func:`decoder_blocks` gives the
pruners their calibration order (one decoder layer at a time, the output head left dense, as the
papers do).

WikiText-2 (``wikitext-2-raw-v1``) is read with ``datasets``: the split's lines joined by
``"\\n\\n"`` and tokenised as one sequence (how the SparseGPT and Wanda evaluations read it), then
cut into windows of the model's context (2,048 tokens for OPT). Offline, :func:`wikitext2` reads
the same Parquet files from a local folder (``root``), as the Hugging Face hub stores them.

Nothing here downloads unless asked to: the tests build a tiny randomly initialised model of the
same class (:func:`tiny_opt`) and small Parquet files in the official layout.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

PRETRAINED = {"opt-125m": "facebook/opt-125m", "tiny-opt": None}
"""The pretrained models of the full scale: our name -> the Hugging Face hub's. ``"tiny-opt"``
is no pretrained model: a randomly initialised two-layer OPT over bytes (:func:`tiny_opt`,
:class:`ByteTokenizer`), built offline, for the full-scale dry run and tests."""

WIKITEXT = ("wikitext", "wikitext-2-raw-v1")
"""WikiText-2 (raw) on the Hugging Face hub: the dataset and its configuration."""

INSTALL_HINT = (
    "the full scale of chapter 7 needs: pip install -e '.[language]' (transformers, datasets)"
)


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as err:  # pragma: no cover - the test extra installs it
        raise ImportError(INSTALL_HINT) from err
    return transformers


class CausalLM(nn.Module):
    """A Hugging Face causal language model as a module ``tokens (n, t) -> logits (n, t, V)``
    (inputs moved to the model's device), with ``context`` (the longest sequence it was trained
    on) and ``vocab_size``, the two attributes :mod:`minipruner.core.language` reads. The wrapped
    model is ``self.lm``; its Linear layers keep their names under ``lm.``."""

    def __init__(self, lm: nn.Module, context: int | None = None) -> None:
        super().__init__()
        self.lm = lm
        config = lm.config
        self.context = int(context or config.max_position_embeddings)
        self.vocab_size = int(config.vocab_size)

    def forward(self, tokens: Tensor) -> Tensor:
        device = next(self.lm.parameters()).device
        return self.lm(input_ids=tokens.to(device), use_cache=False).logits


def load_pretrained(
    name: str = "opt-125m",
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    context: int | None = None,
) -> tuple[CausalLM, Any]:
    """The pretrained model ``name`` (a key of :data:`PRETRAINED`) as a :class:`CausalLM` in
    eval mode on ``device`` in ``dtype``, and its tokenizer, from the Hugging Face hub (or its
    local cache; ``HF_HUB_OFFLINE=1`` reads the cache only). Raises ``ValueError`` for an unknown
    name and ``ImportError`` naming the extra when ``transformers`` is missing."""
    if name not in PRETRAINED:
        raise ValueError(f"unknown pretrained model {name!r}; valid: {', '.join(PRETRAINED)}")
    if PRETRAINED[name] is None:
        tiny = tiny_opt(vocab_size=ByteTokenizer.vocab_size, context=context or 64)
        return tiny.to(device=device, dtype=dtype), ByteTokenizer()
    tf = _transformers()
    lm = tf.AutoModelForCausalLM.from_pretrained(PRETRAINED[name], dtype=dtype)
    tokenizer = tf.AutoTokenizer.from_pretrained(PRETRAINED[name])
    return CausalLM(lm.to(device).eval(), context), tokenizer


class ByteTokenizer:
    """A tokenizer with the call of a hub tokenizer, ``tok(text, return_tensors="pt").input_ids``
    (shape ``(1, n)``), whose tokens are the text's UTF-8 bytes: what :func:`load_pretrained`
    gives with ``"tiny-opt"``."""

    vocab_size = 256

    def __call__(self, text: str, return_tensors: str = "pt") -> Any:
        from types import SimpleNamespace

        return SimpleNamespace(input_ids=torch.tensor([list(text.encode())], dtype=torch.long))


def tiny_opt(seed: int = 0, vocab_size: int = 64, context: int = 32) -> CausalLM:
    """A randomly initialised OPT of two decoder layers of width 16 (the class the full scale
    loads, small enough for a unit test): what the dry run prunes instead of OPT-125M."""
    tf = _transformers()
    config = tf.OPTConfig(
        vocab_size=vocab_size,
        hidden_size=16,
        num_hidden_layers=2,
        ffn_dim=32,
        num_attention_heads=2,
        max_position_embeddings=context,
        word_embed_proj_dim=16,
        pad_token_id=1,
        bos_token_id=2,
        eos_token_id=2,
    )
    torch.manual_seed(seed)
    return CausalLM(tf.OPTForCausalLM(config).eval())


def decoder_blocks(model: CausalLM) -> list[list[str]]:
    """The layer-wise pruners' calibration order for a :class:`CausalLM`: one block per decoder
    layer (``lm.model.decoder.layers.<i>``: its attention projections and its MLP), in order;
    every other Linear layer (the output head, tied to the embedding; OPT's input and output
    projections where the model has them) stays dense, as in the papers. Pass it as
    ``blocks=`` to :func:`minipruner.methods.layerwise.layerwise_prune`."""
    blocks: dict[str, list[str]] = {}
    for name, module in model.named_modules():
        parts = name.split(".")
        if isinstance(module, nn.Linear) and "layers" in parts:
            i = parts.index("layers")
            blocks.setdefault(".".join(parts[: i + 2]), []).append(f"{name}.weight")
    if not blocks:
        raise ValueError(f"{type(model.lm).__name__} has no Linear layers under a 'layers' list")
    return list(blocks.values())


def wikitext2(
    tokenizer: Any,
    split: str = "test",
    root: str | os.PathLike | None = None,
) -> Tensor:
    """WikiText-2 (raw) ``split`` (``"train"``, ``"validation"`` or ``"test"``) as one 1-D
    tensor of token ids: the split's lines joined by ``"\\n\\n"`` and tokenised at once. Read
    from the Hugging Face hub, or (``root``) from the Parquet files in the hub's layout under
    ``root``: ``root/wikitext-2-raw-v1/<split>-00000-of-00001.parquet``. Raises
    ``FileNotFoundError`` naming the file when ``root`` lacks it."""
    if split not in ("train", "validation", "test"):
        raise ValueError(f"unknown split {split!r}; valid: train, validation, test")
    try:
        import datasets
    except ImportError as err:  # pragma: no cover - the test extra installs it
        raise ImportError(INSTALL_HINT) from err
    if root is None:
        data = datasets.load_dataset(*WIKITEXT, split=split)
    else:
        path = Path(root) / WIKITEXT[1] / f"{split}-00000-of-00001.parquet"
        if not path.exists():
            raise FileNotFoundError(
                f"no WikiText-2 {split} split at {path}; download it from the Hugging Face hub "
                f"(dataset {WIKITEXT[0]!r}, configuration {WIKITEXT[1]!r}) or pass root=None"
            )
        data = datasets.load_dataset("parquet", data_files={split: str(path)}, split=split)
    text = "\n\n".join(data["text"])
    return tokenizer(text, return_tensors="pt").input_ids[0]


def write_wikitext_parquet(root: str | os.PathLike, splits: dict[str, Sequence[str]]) -> None:
    """Write WikiText-2-shaped Parquet files (one ``text`` column of lines per split) under
    ``root`` in the hub's layout, as :func:`wikitext2` reads them: for tests, and for a machine
    that copies the real files by hand."""
    import datasets

    folder = Path(root) / WIKITEXT[1]
    folder.mkdir(parents=True, exist_ok=True)
    for split, lines in splits.items():
        datasets.Dataset.from_dict({"text": list(lines)}).to_parquet(
            str(folder / f"{split}-00000-of-00001.parquet")
        )


__all__ = [
    "PRETRAINED",
    "WIKITEXT",
    "ByteTokenizer",
    "CausalLM",
    "decoder_blocks",
    "load_pretrained",
    "tiny_opt",
    "wikitext2",
    "write_wikitext_parquet",
]
