"""The quick-scale language model of chapter 7 (minipruner.core.language): text, splits, byte
tokens, the causal transformer, perplexity, training, and the layer-wise pruners on it."""

import math

import pytest
import torch
from torch import nn

from minipruner.core.language import (
    VOCAB_SIZE,
    TinyGPT,
    calibration_batch,
    corpus_text,
    decode,
    encode,
    lm_windows,
    load_text,
    perplexity,
    split_tokens,
    train_lm,
    unigram_perplexity,
)
from minipruner.core.masks import effective_weight
from minipruner.methods import make_pruner
from minipruner.methods.layerwise import linear_layers


def tiny(seed: int = 0, context: int = 16) -> TinyGPT:
    return TinyGPT(context=context, d_model=16, n_layers=2, n_heads=2, seed=seed)


def test_split_is_deterministic_disjoint_and_contiguous():
    tokens = torch.arange(1000)
    parts = split_tokens(tokens, chunk=30, period=10)
    again = split_tokens(tokens, chunk=30, period=10)
    assert all(torch.equal(parts[k], again[k]) for k in parts)
    joined = torch.cat(list(parts.values()))
    assert joined.numel() == 1000 and torch.equal(joined.sort().values, tokens)  # a partition
    # whole chunks: chunk k (tokens 30k..30k+29) lies in one split, dealt by k mod 10
    for k in range(math.ceil(1000 / 30)):
        chunk = tokens[30 * k : 30 * (k + 1)]
        owner = "test" if k % 10 == 9 else "val" if k % 10 == 8 else "train"
        assert torch.isin(chunk, parts[owner]).all()
    assert parts["val"].tolist() == list(range(240, 270)) + list(range(540, 570)) + list(
        range(840, 870)
    )
    with pytest.raises(ValueError, match="at least"):
        split_tokens(torch.arange(100), chunk=30, period=10)


def test_load_text_is_the_stdlib_documentation():
    text = load_text(size=60_000, chunk=1024)
    assert text.source == "pydoc_data.topics" and len(text.sha256) == 64
    counts = text.counts()
    assert sum(counts.values()) == 60_000
    # 59 chunks, the last (58, a val chunk) holding the remaining 60,000 - 58 * 1,024 = 608
    assert counts["test"] == 5 * 1024 and counts["val"] == 5 * 1024 + 608
    assert torch.equal(load_text(size=60_000, chunk=1024).test, text.test)
    assert int(text.train.max()) < VOCAB_SIZE and text.train.dtype == torch.int64
    assert "assignment" in corpus_text()[:100_000].lower()


def test_byte_tokenizer_round_trip():
    s = "Assignment statements — “quoted” café ß 2:4\n\t€"
    tokens = encode(s)
    assert tokens.dtype == torch.int64 and tokens.numel() == len(s.encode("utf-8"))
    assert decode(tokens) == s
    sample = corpus_text()[:5000]
    assert decode(encode(sample)) == sample
    with pytest.raises(ValueError):
        decode(torch.tensor([300]))


def test_windows_predict_each_token_once():
    tokens = torch.arange(50)
    x, y = lm_windows(tokens, 8)
    assert x.shape == y.shape == (6, 8)
    assert torch.equal(y, x + 1) and torch.equal(x.flatten(), torch.arange(48))
    assert lm_windows(tokens, 8, windows=2)[0].shape == (2, 8)
    with pytest.raises(ValueError):
        lm_windows(tokens, 8, windows=7)


def test_causal_mask():
    model = tiny().eval()
    x = torch.randint(0, VOCAB_SIZE, (2, 16), generator=torch.Generator().manual_seed(1))
    changed = x.clone()
    changed[:, 10] = (changed[:, 10] + 1) % VOCAB_SIZE
    with torch.no_grad():
        a, b = model(x), model(changed)
    assert a.shape == (2, 16, VOCAB_SIZE)
    torch.testing.assert_close(a[:, :10], b[:, :10], rtol=0, atol=0)
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_seeded_model_and_prunable_layers():
    a, b = tiny(seed=3), tiny(seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    names = list(linear_layers(a))
    per_block = ["attn.q", "attn.k", "attn.v", "attn.out", "mlp.fc1", "mlp.fc2"]
    assert names == [f"blocks.{i}.{n}.weight" for i in range(2) for n in per_block]
    assert sum(linear_layers(a)[n].weight.numel() for n in names) == 12 * 16 * 16 * 2


def test_uniform_model_has_perplexity_vocab_size():
    model = tiny()
    with torch.no_grad():
        model.embed.weight.zero_()  # tied head: every logit is 0
    tokens = torch.randint(0, VOCAB_SIZE, (200,), generator=torch.Generator().manual_seed(0))
    assert perplexity(model, tokens) == pytest.approx(VOCAB_SIZE, rel=1e-6)

    class Uniform(nn.Module):
        context = 5

        def forward(self, x):
            return torch.zeros(*x.shape, 7)

    assert perplexity(Uniform(), torch.randint(0, 7, (41,))) == pytest.approx(7, rel=1e-6)
    assert unigram_perplexity(torch.arange(4), torch.arange(4), vocab_size=4) == pytest.approx(4)


def test_training_lowers_the_loss():
    torch.manual_seed(0)
    tokens = encode(corpus_text()[:4000])
    model = tiny()
    before = perplexity(model, tokens)
    log = train_lm(model, tokens, steps=40, batch_size=8, lr=1e-2, warmup=5, seed=0)
    after = perplexity(model, tokens)
    assert len(log.losses) == 40 and log.seconds > 0
    assert after < 0.5 * before
    assert sum(log.losses[-5:]) < sum(log.losses[:5])


@pytest.mark.parametrize("method", ["magnitude-pattern", "wanda", "sparsegpt"])
@pytest.mark.parametrize("pattern", ["unstructured", "2:4"])
def test_layerwise_pruners_on_the_transformer(method, pattern):
    model = tiny(seed=1)
    tokens = encode(corpus_text()[:3000])
    batch = calibration_batch(tokens, n=8, context=16, seed=0)
    embed = model.embed.weight.detach().clone()
    masks = make_pruner(method, pattern=pattern)(model, 0.5, batch)
    layers = linear_layers(model)
    assert set(masks) == set(layers)
    for name, module in layers.items():
        w = effective_weight(module).detach()
        assert int((w == 0).sum()) == w.numel() // 2, name
        if pattern == "2:4":
            assert ((w.reshape(w.shape[0], -1, 4) != 0).sum(-1) <= 2).all(), name
    assert torch.equal(model.embed.weight, embed)  # embeddings and tied head stay dense
    assert math.isfinite(perplexity(model, tokens))
