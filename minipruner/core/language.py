"""A small language model at the quick scale (chapter 7): real text, a byte tokenizer, a
decoder-only transformer built of ``nn.Linear`` layers, training and held-out perplexity.

The text
--------
:func:`corpus_text` is the text of Python's own reference documentation as the standard
library ships it for ``help()``: ``pydoc_data.topics.topics``, a dict of 79 topics (the
statements, expressions, data model, built-in types, ...; about 465,000 characters, 0.47 MB
as UTF-8 under Python 3.11), joined in sorted key order with a blank line between topics.
Why this source:

* it is real English prose written by people (with grammar snippets and short code examples
  between the paragraphs), about 0.5 MB, large enough for a byte-level model of a few hundred
  thousand weights to learn far more than byte frequencies;
* it is in every CPython installation (Debian's ``libpython3.x-stdlib`` included), so it
  needs no download, no extra dependency and no network: it works offline everywhere, as the
  book's quick scale must;
* its licence is the Python Software Foundation's (the documentation's text is PSF-licensed),
  and the package redistributes nothing: it reads the interpreter's own copy.

The price: the text belongs to the running interpreter, so it changes a little between Python
versions (topics are edited, added). :func:`load_text` records the Python version and the
text's SHA-256, so a stored result says exactly which text it was measured on. The usual text
packages of the registry (``nltk``, ``datasets``, ``torchtext``) download their corpora at run
time, which the quick scale cannot do, and no small wheel that ships a public-domain book was
found by name among the registry's packages.

Tokens and splits
-----------------
Tokens are the text's UTF-8 bytes (:func:`encode`, :func:`decode`): the vocabulary is fixed at
:data:`VOCAB_SIZE` = 256 whatever the text, every split (and any other text) is encoded without
an unknown token, and the round trip is exact. A character vocabulary would be smaller (103
symbols here) but would depend on the text, and a test split could hold a character the
training split lacks; a learned subword vocabulary would need a tokenizer to train and ship.
The text is almost all ASCII, so bytes and characters nearly coincide (0.4 % of the bytes
belong to multi-byte characters: typographic quotes and dashes).

:func:`split_tokens` cuts the byte stream into contiguous chunks of :data:`CHUNK` bytes and deals
them out in a fixed cycle of ten: chunk ``k`` goes to validation when ``k mod 10 = 8``, to test
when ``k mod 10 = 9``, to training otherwise (80 / 10 / 10 %). Each split is the concatenation of
its chunks, in order. Contiguous chunks keep sentences and paragraphs whole (a random
character split would leak every test character's neighbours into training); dealing them out
along the whole text puts every part of the documentation in each split.

The model and the measure
-------------------------
:class:`TinyGPT` is a GPT-style decoder: token and position embeddings, pre-LayerNorm blocks of
causal self-attention (projections ``q``, ``k``, ``v``, ``out``, each an ``nn.Linear``) and an
MLP of two ``nn.Linear`` (GELU between), a final LayerNorm and a head tied to the token
embedding, as OPT and GPT-2 tie theirs. So the prunable weights are exactly the six
``nn.Linear`` of each block, the layers the SparseGPT and Wanda papers prune (they leave
embeddings and head dense), and every layer-wise pruner of :mod:`minipruner.methods.layerwise`
applies. Calibrate them on :func:`calibration_batch` (token windows of the training split; the
model's
forward takes token ids) and, as the papers do, one transformer block at a time:
``make_pruner("sparsegpt", blocks=2)`` groups ``blocks.<i>.*``.

The defaults (``d_model`` 96, 2 blocks of 4 heads, context 64: 221,184 prunable weights; 400
steps of 32 windows in :func:`train_lm`) were chosen to train in well under a minute on one CPU
thread while ending far below the unigram perplexity.

Held-out perplexity (:func:`perplexity`) is ``exp`` of the mean next-token cross-entropy,

    PPL = exp( -(1/N) sum_t log p(x_t | x_{t-c}, ..., x_{t-1}) ),

over the ``N`` tokens predicted by consecutive non-overlapping windows of the test split
(:func:`lm_windows`): window ``i`` reads tokens ``[i c, (i + 1) c)`` and predicts
``[i c + 1, (i + 1) c + 1)``, ``c`` the context length, so every token but the first is predicted
once, from between 0 and ``c - 1`` tokens of context (as SparseGPT's and Wanda's WikiText
evaluations do, with their 2,048-token windows). A model that gives every byte the same
probability has ``PPL = 256``; one that knows only byte frequencies has the unigram perplexity
of :func:`unigram_perplexity`.
"""

from __future__ import annotations

import hashlib
import math
import sys
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

VOCAB_SIZE = 256
"""Byte tokens: every value 0..255 is a token."""
CHUNK = 4096
"""Bytes per contiguous chunk of :func:`split_tokens`."""
PERIOD = 10
"""Chunks per cycle of :func:`split_tokens`: the last of each ten is test, the one before it
validation."""
SPLITS = ("train", "val", "test")


# ------------------------------------------------------------------------------- the text


def corpus_text() -> str:
    """The text of Python's reference documentation shipped with the standard library
    (``pydoc_data.topics.topics``): every topic, in sorted key order, joined by a blank line."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key].strip("\n") for key in sorted(topics)) + "\n"


def encode(text: str) -> Tensor:
    """The UTF-8 bytes of ``text`` as an int64 tensor of token ids in ``[0, 256)``."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    return torch.frombuffer(bytearray(text.encode("utf-8")), dtype=torch.uint8).long()


def decode(tokens: Tensor, errors: str = "strict") -> str:
    """The text whose UTF-8 bytes are ``tokens`` (1-D, values in ``[0, 256)``):
    ``decode(encode(s)) == s`` for every string. A slice that cuts a multi-byte character
    fails with ``errors="strict"``; pass ``errors="replace"`` to show such slices."""
    t = torch.as_tensor(tokens)
    if t.dim() != 1:
        raise ValueError(f"tokens must be 1-D, got shape {tuple(t.shape)}")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= VOCAB_SIZE):
        raise ValueError(f"byte tokens must lie in [0, {VOCAB_SIZE})")
    return bytes(t.to(torch.uint8).tolist()).decode("utf-8", errors=errors)


def split_tokens(tokens: Tensor, chunk: int = CHUNK, period: int = PERIOD) -> dict[str, Tensor]:
    """``{"train", "val", "test": tokens}``: ``tokens`` cut into contiguous chunks of ``chunk``
    tokens (the last may be shorter), chunk ``k`` going to ``"val"`` when
    ``k mod period = period - 2``, to ``"test"`` when ``k mod period = period - 1`` and to
    ``"train"`` otherwise; each split is its chunks concatenated in order. Deterministic and
    disjoint: every token lands in exactly one split."""
    if tokens.dim() != 1:
        raise ValueError(f"tokens must be 1-D, got shape {tuple(tokens.shape)}")
    for name, v in (("chunk", chunk), ("period", period)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if period < 3:
        raise ValueError(f"period must be >= 3 (train, val and test chunks), got {period}")
    n_chunks = math.ceil(tokens.numel() / chunk)
    if n_chunks < period:
        raise ValueError(
            f"{tokens.numel()} tokens make {n_chunks} chunks of {chunk}; need at least "
            f"{period} so that every split gets one"
        )
    which = torch.arange(n_chunks) % period
    owner = torch.where(which == period - 1, 2, torch.where(which == period - 2, 1, 0))
    per_token = owner.repeat_interleave(chunk)[: tokens.numel()]
    return {name: tokens[per_token == i] for i, name in enumerate(SPLITS)}


@dataclass
class Text:
    """A tokenised text and its splits: ``train``, ``val``, ``test`` (int64 byte tokens),
    where the text came from (``source``, ``python``) and its ``sha256``."""

    train: Tensor
    val: Tensor
    test: Tensor
    source: str
    python: str
    sha256: str
    vocab_size: int = VOCAB_SIZE
    chunk: int = CHUNK

    def counts(self) -> dict[str, int]:
        """Tokens in each split."""
        return {name: int(getattr(self, name).numel()) for name in SPLITS}


def load_text(chunk: int = CHUNK, period: int = PERIOD, size: int | None = None) -> Text:
    """:func:`corpus_text` encoded as bytes (:func:`encode`) and split (:func:`split_tokens`).
    ``size`` keeps only the first ``size`` bytes before splitting (for tests)."""
    text = corpus_text()
    tokens = encode(text)
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size must be a positive integer or None, got {size!r}")
        tokens = tokens[:size]
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    parts = split_tokens(tokens, chunk, period)
    version = ".".join(map(str, sys.version_info[:3]))
    return Text(**parts, source="pydoc_data.topics", python=version, sha256=digest, chunk=chunk)


def unigram_perplexity(train: Tensor, test: Tensor, vocab_size: int = VOCAB_SIZE) -> float:
    """Perplexity on ``test`` of the byte-frequency model of ``train`` with add-one smoothing,
    ``p(b) = (n_b + 1) / (N + V)``: ``exp(-(1/|test|) sum_t log p(x_t))``. The baseline a
    language model must beat to have learned anything beyond byte frequencies."""
    counts = torch.bincount(train.flatten(), minlength=vocab_size).double() + 1.0
    logp = (counts / counts.sum()).log()
    return float(torch.exp(-logp[test.flatten()].mean()))


# ------------------------------------------------------------------------------- the model


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with separate ``nn.Linear`` projections:
    ``Q = x W_q^T``, ``K = x W_k^T``, ``V = x W_v^T`` (each ``d x d``), per head
    ``softmax(Q K^T / sqrt(d_head) + causal mask) V``, heads concatenated, then ``out``."""

    def __init__(self, d_model: int, n_heads: int, bias: bool = True) -> None:
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not a multiple of n_heads {n_heads}")
        self.n_heads = n_heads
        self.q = nn.Linear(d_model, d_model, bias=bias)
        self.k = nn.Linear(d_model, d_model, bias=bias)
        self.v = nn.Linear(d_model, d_model, bias=bias)
        self.out = nn.Linear(d_model, d_model, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        b, t, d = x.shape
        h = self.n_heads

        def heads(y: Tensor) -> Tensor:
            return y.view(b, t, h, d // h).transpose(1, 2)  # b, h, t, d_head

        y = F.scaled_dot_product_attention(
            heads(self.q(x)), heads(self.k(x)), heads(self.v(x)), is_causal=True
        )
        return self.out(y.transpose(1, 2).reshape(b, t, d))


class MLPBlock(nn.Module):
    """``fc2(GELU(fc1(x)))`` with ``fc1: d -> d_mlp`` and ``fc2: d_mlp -> d``."""

    def __init__(self, d_model: int, d_mlp: int, bias: bool = True) -> None:
        super().__init__()
        self.fc1 = nn.Linear(d_model, d_mlp, bias=bias)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(d_mlp, d_model, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """A pre-LayerNorm transformer block: ``x + attn(ln1(x))``, then ``x + mlp(ln2(x))``."""

    def __init__(self, d_model: int, n_heads: int, d_mlp: int, bias: bool = True) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = CausalSelfAttention(d_model, n_heads, bias)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = MLPBlock(d_model, d_mlp, bias)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    """A decoder-only transformer on byte tokens.

    ``logits = LN_f(h_L) E^T`` with ``h_0 = E[x] + P[0..t)`` (token embedding ``E``,
    ``vocab_size x d_model``, tied to the head; learned positions ``P``, ``context x d_model``)
    and ``h_l = Block_l(h_{l-1})`` (:class:`Block`). Input: token ids ``(batch, t)`` with
    ``t <= context`` (a floating tensor of whole numbers, such as
    :func:`minipruner.core.masks.example_input` builds, is cast to int64); output: logits
    ``(batch, t, vocab_size)``; position ``s`` sees tokens ``0..s`` only.

    Weights: ``12 d^2 L`` in the ``nn.Linear`` layers when ``d_mlp = 4 d`` (``4 d^2`` attention,
    ``8 d^2`` MLP per block; the prunable ones), plus the embeddings, biases and LayerNorms.
    Initialisation as GPT-2: normal with sd 0.02, the projections into the residual stream
    (``attn.out``, ``mlp.fc2``) with sd ``0.02 / sqrt(2 L)``, biases 0; seeded by ``seed``.
    """

    def __init__(
        self,
        vocab_size: int = VOCAB_SIZE,
        context: int = 64,
        d_model: int = 96,
        n_layers: int = 2,
        n_heads: int = 4,
        d_mlp: int | None = None,
        bias: bool = True,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        for name, v in (
            ("vocab_size", vocab_size),
            ("context", context),
            ("d_model", d_model),
            ("n_layers", n_layers),
            ("n_heads", n_heads),
        ):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        d_mlp = 4 * d_model if d_mlp is None else d_mlp
        self.vocab_size, self.context, self.d_model = vocab_size, context, d_model
        self.input_shape = (context,)
        generator_state = torch.random.get_rng_state()
        if seed is not None:
            torch.manual_seed(seed)
        try:
            self.embed = nn.Embedding(vocab_size, d_model)
            self.pos = nn.Embedding(context, d_model)
            self.blocks = nn.ModuleList(
                Block(d_model, n_heads, d_mlp, bias) for _ in range(n_layers)
            )
            self.ln_f = nn.LayerNorm(d_model)
            self._init(n_layers)
        finally:
            if seed is not None:
                torch.random.set_rng_state(generator_state)

    def _init(self, n_layers: int) -> None:
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif ".ln" in name or name.startswith("ln_f"):
                nn.init.ones_(p)
            else:
                residual = name.endswith(("attn.out.weight", "mlp.fc2.weight"))
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layers) if residual else 0.02)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 2:
            raise ValueError(f"TinyGPT takes token ids (batch, t), got shape {tuple(x.shape)}")
        if x.shape[1] > self.context:
            raise ValueError(f"{x.shape[1]} tokens exceed the context of {self.context}")
        if x.is_floating_point():
            x = x.long()
        h = self.embed(x) + self.pos(torch.arange(x.shape[1], device=x.device))
        for block in self.blocks:
            h = block(h)
        return self.ln_f(h) @ self.embed.weight.T


# ------------------------------------------------------------------------ training, measure


def lm_windows(tokens: Tensor, context: int, windows: int | None = None) -> tuple[Tensor, Tensor]:
    """Consecutive non-overlapping windows of ``tokens`` as ``(x, y)``, each ``(n, context)``:
    ``x[i] = tokens[i c : (i + 1) c]`` and ``y[i] = tokens[i c + 1 : (i + 1) c + 1]`` (``c`` =
    ``context``), for ``n = (len - 1) // c`` windows, or the first ``windows`` of them."""
    if isinstance(context, bool) or not isinstance(context, int) or context < 1:
        raise ValueError(f"context must be a positive integer, got {context!r}")
    n = (tokens.numel() - 1) // context
    if windows is not None:
        if isinstance(windows, bool) or not isinstance(windows, int) or windows < 1:
            raise ValueError(f"windows must be a positive integer or None, got {windows!r}")
        if windows > n:
            raise ValueError(
                f"{tokens.numel()} tokens hold {n} windows of {context}, not {windows}"
            )
        n = windows
    if n < 1:
        raise ValueError(f"{tokens.numel()} tokens hold no window of {context} (+1 target)")
    x = tokens[: n * context].reshape(n, context)
    y = tokens[1 : n * context + 1].reshape(n, context)
    return x, y


def random_windows(
    tokens: Tensor, n: int, context: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """``n`` windows ``(x, y)`` of ``context`` tokens at random starts in ``tokens`` (uniform
    over ``[0, len - context - 1]``, drawn from ``generator``): ``y`` is ``x`` shifted by one."""
    if tokens.numel() < context + 1:
        raise ValueError(f"{tokens.numel()} tokens are fewer than context + 1 = {context + 1}")
    starts = torch.randint(0, tokens.numel() - context, (n,), generator=generator)
    index = starts[:, None] + torch.arange(context + 1)
    seq = tokens[index]
    return seq[:, :-1], seq[:, 1:]


def calibration_batch(
    tokens: Tensor, n: int = 128, context: int = 64, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """The layer-wise pruners' calibration data: ``n`` random windows of ``context`` tokens
    from ``tokens`` (the training split), seeded by ``seed``, as ``(x, y)`` with ``y`` the
    next tokens (the SparseGPT and Wanda papers draw 128 random 2,048-token segments of their
    training text)."""
    return random_windows(tokens, n, context, torch.Generator().manual_seed(seed))


@dataclass
class TrainLog:
    """What :func:`train_lm` did: the training loss of every step, the wall-clock seconds it
    took and the CPU seconds of this process (``time.process_time``; on a shared machine the
    wall clock also counts the time other processes held the cores)."""

    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0


def train_lm(
    model: TinyGPT,
    tokens: Tensor,
    steps: int = 400,
    batch_size: int = 32,
    lr: float = 3e-3,
    weight_decay: float = 0.01,
    warmup: int = 30,
    seed: int = 0,
) -> TrainLog:
    """Train ``model`` in place on random windows of ``tokens`` (:func:`random_windows`, full
    context, ``batch_size`` per step, drawn from a generator seeded by ``seed``) to minimise the
    mean next-token cross-entropy, with AdamW (``betas = (0.9, 0.95)``, ``weight_decay`` on the
    ``nn.Linear`` weights only), a learning rate warmed up linearly over ``warmup`` steps then
    decayed by a cosine to ``lr / 10`` at the last step, and gradients clipped to norm 1.
    Returns the per-step losses and the seconds taken (wall clock and CPU); leaves the model
    in eval mode."""
    for name, v in (("steps", steps), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup!r}")
    decay = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    ids = {id(p) for p in decay}
    rest = [p for p in model.parameters() if id(p) not in ids]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}],
        lr=lr,
        betas=(0.9, 0.95),
    )

    def rate(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - 1 - warmup)
        return 0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, progress)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, rate)
    generator = torch.Generator().manual_seed(seed)
    log = TrainLog()
    start, cpu = time.perf_counter(), time.process_time()
    model.train()
    for _ in range(steps):
        x, y = random_windows(tokens, batch_size, model.context, generator)
        loss = F.cross_entropy(model(x).reshape(-1, model.vocab_size), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        log.losses.append(float(loss.detach()))
    model.eval()
    log.seconds = time.perf_counter() - start
    log.cpu_seconds = time.process_time() - cpu
    return log


@torch.no_grad()
def mean_nll(
    model: nn.Module,
    tokens: Tensor,
    context: int | None = None,
    windows: int | None = None,
    batch_size: int = 64,
) -> float:
    """Mean next-token cross-entropy (nats per token) of ``model`` over the windows of
    :func:`lm_windows` (``context`` default ``model.context``; all windows, or the first
    ``windows``), in eval mode: ``-(1/N) sum log softmax(logits)[target]``. The model's mode is
    restored afterwards."""
    context = context or getattr(model, "context", None)
    if context is None:
        raise ValueError(f"{type(model).__name__} has no context attribute; pass context")
    x, y = lm_windows(tokens, context, windows)
    was_training = model.training
    model.eval()
    total = torch.zeros((), dtype=torch.float64)
    try:
        for xb, yb in zip(x.split(batch_size), y.split(batch_size), strict=True):
            logits = model(xb)
            total += F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), yb.reshape(-1), reduction="sum"
            ).double()
    finally:
        model.train(was_training)
    return float(total / y.numel())


def perplexity(
    model: nn.Module,
    tokens: Tensor,
    context: int | None = None,
    windows: int | None = None,
    batch_size: int = 64,
) -> float:
    """Held-out perplexity ``exp(mean next-token cross-entropy)`` of ``model`` on ``tokens``
    (:func:`mean_nll`): 256 for a model that gives every byte the same probability, 1 for one
    that is always certain and right."""
    return math.exp(mean_nll(model, tokens, context, windows, batch_size))


__all__ = [
    "CHUNK",
    "PERIOD",
    "SPLITS",
    "VOCAB_SIZE",
    "Block",
    "CausalSelfAttention",
    "MLPBlock",
    "Text",
    "TinyGPT",
    "TrainLog",
    "calibration_batch",
    "corpus_text",
    "decode",
    "encode",
    "lm_windows",
    "load_text",
    "mean_nll",
    "perplexity",
    "random_windows",
    "split_tokens",
    "train_lm",
    "unigram_perplexity",
]
