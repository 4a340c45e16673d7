"""Chapter 7's full-scale path offline: a tiny randomly initialised OPT (the class of OPT-125M)
wrapped as a CausalLM, pruned block by block by the layer-wise pruners with the output head left
dense, its perplexity measured; WikiText-2 read from Parquet files written in the hub's layout."""

from types import SimpleNamespace

import pytest
import torch

pytest.importorskip("transformers")
pytest.importorskip("datasets")

from minipruner.core import pretrained as pt  # noqa: E402
from minipruner.core.language import perplexity  # noqa: E402
from minipruner.methods import make_pruner  # noqa: E402


class ByteTokenizer:
    """Stands in for a hub tokenizer: ``tok(text, return_tensors="pt").input_ids`` = bytes."""

    def __call__(self, text: str, return_tensors: str = "pt") -> SimpleNamespace:
        return SimpleNamespace(input_ids=torch.tensor([list(text.encode())]))


def test_tiny_opt_is_a_causal_lm_of_the_full_scale_class():
    model = pt.tiny_opt(seed=0, vocab_size=64, context=32)
    assert type(model.lm).__name__ == "OPTForCausalLM"
    assert (model.context, model.vocab_size) == (32, 64)
    logits = model(torch.randint(0, 64, (3, 10)))
    assert logits.shape == (3, 10, 64)


def test_decoder_blocks_are_one_per_layer_and_leave_the_head_dense():
    model = pt.tiny_opt()
    blocks = pt.decoder_blocks(model)
    assert len(blocks) == 2
    for i, block in enumerate(blocks):
        assert all(n.startswith(f"lm.model.decoder.layers.{i}.") for n in block)
        leaves = sorted(n.split(".")[-2] for n in block)
        assert leaves == ["fc1", "fc2", "k_proj", "out_proj", "q_proj", "v_proj"]
    assert not any("lm_head" in n for b in blocks for n in b)
    flat = torch.nn.Linear(2, 2)
    flat.config = SimpleNamespace(max_position_embeddings=4, vocab_size=2)
    with pytest.raises(ValueError, match="no Linear layers under a 'layers' list"):
        pt.decoder_blocks(pt.CausalLM(flat))


@pytest.mark.parametrize(
    ("method", "pattern", "sparsity"), [("sparsegpt", "unstructured", 0.5), ("wanda", "2:4", 0.5)]
)
def test_layerwise_pruners_prune_every_decoder_layer_and_nothing_else(method, pattern, sparsity):
    model = pt.tiny_opt(seed=1)
    x = torch.randint(0, model.vocab_size, (8, model.context))
    head = model.lm.lm_head.weight.detach().clone()
    dense = perplexity(model, torch.randint(0, model.vocab_size, (4 * model.context + 1,)))
    masks = make_pruner(method, pattern=pattern, blocks=pt.decoder_blocks(model))(
        model, sparsity, (x, None)
    )
    assert len(masks) == 12
    for name, mask in masks.items():
        assert "layers" in name
        assert mask.float().mean().item() == pytest.approx(1 - sparsity)
    assert torch.equal(model.lm.lm_head.weight.detach(), head)
    pruned = perplexity(model, torch.randint(0, model.vocab_size, (4 * model.context + 1,)))
    assert torch.isfinite(torch.tensor([dense, pruned])).all()


def test_wikitext2_reads_the_hub_layout_and_joins_lines_as_the_papers_do(tmp_path):
    pt.write_wikitext_parquet(tmp_path, {"test": ["", " = Title = ", "", " Some text ."]})
    tokens = pt.wikitext2(ByteTokenizer(), "test", root=tmp_path)
    assert bytes(tokens.tolist()).decode() == "\n\n = Title = \n\n\n\n Some text ."
    with pytest.raises(FileNotFoundError, match="validation"):
        pt.wikitext2(ByteTokenizer(), "validation", root=tmp_path)
    with pytest.raises(ValueError, match="unknown split"):
        pt.wikitext2(ByteTokenizer(), "dev", root=tmp_path)


def test_unknown_pretrained_model_is_a_clear_error():
    with pytest.raises(ValueError, match="opt-125m"):
        pt.load_pretrained("gpt-5")
