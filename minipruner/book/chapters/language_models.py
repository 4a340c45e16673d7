"""Chapter 7's experiments: one-shot layer-wise pruning of a small language model.

One :class:`~minipruner.core.language.TinyGPT` per seed is trained once on Python's reference
documentation (byte tokens, :func:`~minipruner.core.language.load_text`) and cached
(:func:`language_model`, a shared run). Every configuration copies it, prunes all of its
``nn.Linear`` layers once, without retraining, and measures the held-out perplexity
(:func:`~minipruner.core.language.perplexity` on the test split):

- ``dense``: the trained model itself (perplexity, training cost, the unigram baseline);
- ``sweep``: one method (magnitude, Wanda, SparseGPT; ids of :mod:`minipruner.methods`) at one
  level: an unstructured sparsity, or an N:M pattern (2:4, 4:8);
- ``groups``: the Wanda paper's ablation of the comparison group, an unstructured mask with
  the other group than the method's default (Wanda with one group per layer; magnitude with
  one group per output row), so that the score and the group can be told apart;
- ``cost``: the seconds each method takes on one random square layer, for several widths
  (its statistics ``X Xᵀ`` or ``||X_j||²`` given, as the Wanda README times pruning: the
  forward passes left out), and how they grow with the width.

The pruners are calibrated, as the papers do, one transformer block at a time on windows of
the training split (the seed's own draw), SparseGPT with the papers' 1 % damping and
128-column blocks.

A reader maps chapter 7 to this module (the experiments and the claims), to
:mod:`minipruner.book.chapters.language_models_page` (what the page shows from stored results
alone: the levels of the sweep, the accessors the claims read, the Wanda README's table, three
figures and the tables) and to :mod:`minipruner.methods.layerwise` (the methods).
"""

from __future__ import annotations

import copy
import functools
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from ...core.data import data_root
from ...core.language import (
    Text,
    TinyGPT,
    calibration_batch,
    load_text,
    perplexity,
    train_lm,
    unigram_perplexity,
)
from ...core.pretrained import decoder_blocks, load_pretrained, wikitext2
from ...core.scale import by_scale, shifted_seeds
from ...core.scale import seed_offset as checked_offset
from ...core.store import load_or_compute
from ...core.train import default_device
from ...experiments.records import Results
from ...methods import get_method, make_pruner
from ...methods.layerwise import (
    group_mask,
    obc_prune,
    sparsegpt_prune,
    wanda_scores,
)
from .. import calibration
from ..claims import TIMING, Claim, exceeds
from . import language_models_page
from .language_models_page import (
    DEFAULT_GROUPS,
    MAGNITUDE,
    PAPER_TABLE,
    SPARSEGPT,
    WANDA,
    cost_exponents,
    dense_ppl,
    group_levels,
    group_ppl,
    label,
    level_name,
    levels,
    ppl,
    seconds_per_layer,
)

VERSION = 1
GRID = ("seeds", "methods", "sparsities", "patterns", "group_sparsities")
TITLE = "Layer-wise one-shot pruning of language models"
EXPLORER = "language_models_explorer"  # its explorer in minipruner.book.explorers
TIMED = ("cost",)  # measure time: run with no other configuration beside them
METHODS = (MAGNITUDE, WANDA, SPARSEGPT)
"""The page's methods, by their ids in :data:`minipruner.methods.METHODS` (results are keyed
by id; the page prints each method's label)."""
HEADLINES = (
    ("At 2:4:", "SparseGPT reaches", "than Wanda"),
    ("At 50 %:", "Wanda with per-output groups"),
    ("At 50 %:", "SparseGPT adds"),
)
"""The claims (words of their statements) the README's summary table shows for this chapter."""
figures = language_models_page.figures
"""The chapter's three plots (:func:`.language_models_page.figures`)."""
table = language_models_page.table
"""The chapter's table of perplexities (:func:`.language_models_page.table`)."""
# What else the page reads from stored results (:mod:`.language_models_page`), where the
# notebook, the tests and the explorer read it: chapter.<name>.
COLORS = language_models_page.COLORS
perplexity_figure = language_models_page.perplexity_figure
groups_figure = language_models_page.groups_figure
cost_figure = language_models_page.cost_figure
paper_ratios = language_models_page.paper_ratios
paper_table = language_models_page.paper_table
cost_table = language_models_page.cost_table


def settings(scale: str, seed_offset: int | None = None) -> dict[str, Any]:
    """The chapter's settings. The quick scale trains one TinyGPT per seed (d 96, 2 blocks,
    context 64) on the standard library's documentation; the full scale prunes the papers'
    pretrained OPT-125M (:mod:`minipruner.core.pretrained`, context 2,048) calibrated on 128
    windows of WikiText-2's training split and measures the whole test split's perplexity, as
    the SparseGPT paper does; its seeds draw the calibration windows (the model is the same)."""
    offset = checked_offset(seed_offset)  # added to every seed; None: $MINIPRUNER_SEED_OFFSET
    out = {
        "seeds": shifted_seeds([0, 1, 2, 3, 4], offset),
        "seed_offset": offset,
        "scale": scale,
        "methods": list(METHODS),
        "sparsities": [0.5, 0.6, 0.7, 0.8],
        "patterns": ["2:4", "4:8"],
        "group_sparsities": [0.5, 0.7],
        "model": {"context": 64, "d_model": 96, "n_layers": 2, "n_heads": 4},
        "train": {"steps": 250, "batch_size": 32, "lr": 3e-3, "weight_decay": 0.01, "warmup": 30},
        "calibration": {"windows": 64, "blocks": 2},
        "sparsegpt": {"damp": 0.01, "blocksize": 128},
        "eval_windows": by_scale(192, None, scale),
        "cost": {
            "widths": [64, 128, 256, 512],
            "obc_widths": [32, 64],
            "tokens": 2048,
            "repeats": 1,
        },
    }
    if scale == "full":
        out |= {
            "seeds": shifted_seeds([0, 1, 2], offset),
            "model": {"pretrained": "opt-125m"},
            "train": None,
            "data": "wikitext-2",
            "calibration": {"windows": 128, "blocks": "decoder"},
            "eval_windows": None,
            "eval_batch": 4,
        }
    return out


def configurations(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """Per seed: the dense model, every (method, level) of the sweep, the ``groups`` ablation
    (magnitude and Wanda with the other comparison group) at each of ``group_sparsities``,
    and the cost of each method on random layers."""
    out = []
    for seed in settings["seeds"]:
        out.append({"experiment": "dense", "seed": seed})
        for method in settings["methods"]:
            for pattern, s in levels(settings):
                out.append(
                    {
                        "experiment": "sweep",
                        "seed": seed,
                        "method": method,
                        "pattern": pattern,
                        "sparsity": s,
                    }
                )
        for method in (m for m in settings["methods"] if m in DEFAULT_GROUPS):
            other = "row" if DEFAULT_GROUPS[method] == "layer" else "layer"
            for s in settings["group_sparsities"]:
                out.append(
                    {
                        "experiment": "groups",
                        "seed": seed,
                        "method": method,
                        "groups": other,
                        "sparsity": float(s),
                    }
                )
        out.append({"experiment": "cost", "seed": seed})
    return out


# ------------------------------------------------------------------ the model and its text


@functools.lru_cache(maxsize=1)
def text() -> Text:
    """The tokenised text and its splits (:func:`~minipruner.core.language.load_text`), once per
    process."""
    return load_text()


def pretrained(settings: dict[str, Any]) -> bool:
    """Whether the settings prune a pretrained model (the full scale) rather than train one."""
    return "pretrained" in settings["model"]


@functools.lru_cache(maxsize=1)
def _pretrained(name: str) -> tuple[nn.Module, Any]:
    return load_pretrained(name, device=default_device())


@functools.lru_cache(maxsize=1)
def _wikitext(name: str) -> Text:

    root = data_root() / "wikitext"
    root = root if root.exists() else None  # else the Hugging Face hub
    lm, tokenizer = _pretrained(name)
    splits = {s: wikitext2(tokenizer, s, root) for s in ("train", "validation", "test")}
    return Text(
        train=splits["train"],
        val=splits["validation"],
        test=splits["test"],
        source="WikiText-2 (wikitext-2-raw-v1)",
        python="",
        sha256="",
        vocab_size=lm.vocab_size,
    )


def corpus(settings: dict[str, Any]) -> Text:
    """The text the settings prune on: the standard library's documentation in bytes (quick),
    or WikiText-2 in the pretrained model's tokens (full; read from ``$MINIPRUNER_DATA/wikitext``
    when it holds the hub's Parquet files, else from the hub)."""
    return _wikitext(settings["model"]["pretrained"]) if pretrained(settings) else text()


def language_model(settings: dict[str, Any], seed: int) -> dict[str, Any]:
    """Train the seed's TinyGPT (``settings["model"]``, ``settings["train"]``) on the training
    split, once: cached under a key of the model, the training, the seed and the text's SHA-256
    (a new Python whose documentation differs trains anew). Returns ``{"state": state dict,
    "losses": per-step training losses, "seconds", "cpu_seconds"}``."""
    data = text()

    def compute() -> dict[str, Any]:
        net = TinyGPT(**settings["model"], seed=seed)
        log = train_lm(net, data.train, seed=seed, **settings["train"])
        return {
            "state": {k: v.detach().cpu() for k, v in net.state_dict().items()},
            "losses": torch.tensor(log.losses),
            "seconds": log.seconds,
            "cpu_seconds": log.cpu_seconds,
        }

    config = {
        "model": settings["model"],
        "train": settings["train"],
        "seed": seed,
        "text": {"source": data.source, "sha256": data.sha256, "chunk": data.chunk},
    }
    return load_or_compute("ch07-tinygpt", config, compute)


def model(settings: dict[str, Any], seed: int | None = None) -> nn.Module:
    """The trained TinyGPT of ``seed`` (the first seed by default), in eval mode; at the full
    scale a fresh copy of the pretrained model (the same for every seed)."""
    if pretrained(settings):
        return copy.deepcopy(_pretrained(settings["model"]["pretrained"])[0]).eval()
    seed = settings["seeds"][0] if seed is None else seed
    net = TinyGPT(**settings["model"])
    net.load_state_dict(language_model(settings, seed)["state"])
    return net.eval()


def shared_runs(settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The training of every seed's model (:func:`language_model`): all of a seed's
    configurations prune it. None at the full scale (the model is pretrained)."""
    if pretrained(settings):
        return []
    return [
        {"call": "language_model", "kwargs": {"seed": seed}, "seed": seed}
        for seed in settings["seeds"]
    ]


def config_trainings(settings: dict[str, Any], config: dict[str, Any]) -> list[dict[str, Any]]:
    """The full-scale cost of ``config``: none (configurations prune a trained model once)."""
    return []


def shared_run_trainings(settings: dict[str, Any], run: dict[str, Any]) -> list[dict[str, Any]]:
    """The full-scale cost of one shared run: none counted. The TinyGPT's training (about 15
    CPU-seconds) is not a network of ``benchmarks/full_scale_estimate.py``'s cost model, which
    times image networks on their datasets."""
    if run["call"] != "language_model":
        raise ValueError(f"no cost declared for the shared run {run['call']!r}")
    return []


def calibration_inputs(settings: dict[str, Any], seed: int) -> torch.Tensor:
    """The seed's calibration windows: ``settings["calibration"]["windows"]`` random windows of
    the model's context from the training split, drawn with ``seed``."""
    cal = settings["calibration"]
    ctx = model_context(settings)
    return calibration_batch(corpus(settings).train, cal["windows"], ctx, seed=seed)[0]


def model_context(settings: dict[str, Any]) -> int:
    """The model's context: the settings' (quick) or the pretrained model's (full)."""
    if pretrained(settings):
        return int(_pretrained(settings["model"]["pretrained"])[0].context)
    return int(settings["model"]["context"])


def pruner_options(settings: dict[str, Any], method: str, pattern: str, groups: str | None):
    """The options of ``method``'s pruner on this page: the pattern, the calibration order (one
    transformer block at a time), SparseGPT's damping and block size, and ``groups`` where
    given; each method takes those it declares."""
    entry = get_method(method)
    available = {"pattern": pattern, "blocks": settings["calibration"]["blocks"]}
    available.update(settings["sparsegpt"])
    if groups is not None:
        available["groups"] = groups
    return {k: v for k, v in available.items() if k in entry.options}


def prune(
    net: nn.Module,
    settings: dict[str, Any],
    seed: int,
    method: str,
    pattern: str,
    sparsity: float,
    groups: str | None = None,
) -> float:
    """Prune ``net`` in place with ``method`` at ``(pattern, sparsity)`` on the seed's
    calibration inputs; returns the seconds it took (forward passes for calibration
    included)."""
    x = calibration_inputs(settings, seed)
    options = pruner_options(settings, method, pattern, groups)
    if options.get("blocks") == "decoder":  # one decoder layer at a time, the head dense
        options["blocks"] = decoder_blocks(net)
    pruner = make_pruner(method, **options)
    start = time.perf_counter()
    pruner(net, sparsity, (x, None))
    return time.perf_counter() - start


def test_perplexity(settings: dict[str, Any], net: nn.Module) -> float:
    """Perplexity on the test split's first ``settings["eval_windows"]`` windows (all when
    ``None``)."""
    return perplexity(
        net,
        corpus(settings).test,
        windows=settings["eval_windows"],
        batch_size=settings.get("eval_batch", 64),
    )


def run(config: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration (see the module docstring) and return its measurements."""
    seed = config["seed"]
    if config["experiment"] == "cost":
        return run_cost(settings, seed)
    net = model(settings, seed)
    if config["experiment"] == "dense" and pretrained(settings):
        return {"ppl": test_perplexity(settings, net), "model": settings["model"]["pretrained"]}
    if config["experiment"] == "dense":
        trained = language_model(settings, seed)
        data = text()
        return {
            "ppl": test_perplexity(settings, net),
            "unigram_ppl": unigram_perplexity(data.train, data.test),
            "train_seconds": float(trained["seconds"]),
            "train_cpu_seconds": float(trained["cpu_seconds"]),
            "final_loss": float(trained["losses"][-20:].mean()),
            "python": data.python,
            "text_sha256": data.sha256,
        }
    pattern = config.get("pattern", "unstructured")
    seconds = prune(
        net, settings, seed, config["method"], pattern, config["sparsity"], config.get("groups")
    )
    weights = [m.weight for m in net.modules() if isinstance(m, nn.Linear)]
    zeros = sum(int((w == 0).sum()) for w in weights)
    return {
        "ppl": test_perplexity(settings, net),
        "prune_seconds": seconds,
        "layers": len(weights),
        "achieved": zeros / sum(w.numel() for w in weights),
    }


def run_cost(settings: dict[str, Any], seed: int) -> dict[str, Any]:
    """Seconds each method takes on one random ``d x d`` layer at 50 % (the best of ``repeats``
    runs), for each width ``d`` of ``settings["cost"]``, its statistics given (``X Xᵀ`` for
    SparseGPT and OBC, ``||X_j||²`` for Wanda, from ``tokens`` random inputs): the forward passes
    are left out, as the Wanda README times pruning. OBC only at ``obc_widths`` (it is
    ``O(d^4)``)."""
    cost = settings["cost"]
    g = torch.Generator().manual_seed(seed)
    out: dict[str, dict[str, float]] = {m: {} for m in (*settings["methods"], "obc")}
    steps = {
        MAGNITUDE: lambda w, x, h: group_mask(w.abs(), 0.5, "layer"),
        WANDA: lambda w, x, h: group_mask(wanda_scores(w, (x**2).sum(0)), 0.5, "row"),
        SPARSEGPT: lambda w, x, h: sparsegpt_prune(w, h, 0.5, **settings["sparsegpt"]),
        "obc": lambda w, x, h: obc_prune(w, h, 0.5, damp=settings["sparsegpt"]["damp"]),
    }
    for d in sorted(set(cost["widths"]) | set(cost["obc_widths"])):
        w = torch.randn(d, d, generator=g)
        x = torch.randn(cost["tokens"], d, generator=g)
        h = 2.0 * x.double().T @ x.double()
        for method, step in steps.items():
            if d not in cost["obc_widths" if method == "obc" else "widths"] or method not in out:
                continue
            times = []
            for _ in range(cost["repeats"]):
                start = time.perf_counter()
                step(w, x, h)
                times.append(time.perf_counter() - start)
            out[method][str(d)] = min(times)
    return {"layer_seconds": out, "threads": torch.get_num_threads()}


# ------------------------------------------------------------------ claims


def _rel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # how much higher b's perplexity is than a's, as a fraction (per seed)
    return b / a - 1


def readme_says(a: str, b: str, pattern: str, sparsity: float) -> str:
    """What the Wanda README's table (:data:`PAPER_TABLE`) says of "``a`` reaches a lower
    perplexity than ``b``" at ``(pattern, sparsity)``: on how many of its LLaMA-2 models ``a``'s
    perplexity is the lower (and how many are level); ``""`` where the table has no such row."""
    case = "unstructured 50%" if (pattern, sparsity) == ("unstructured", 0.5) else pattern
    rows = PAPER_TABLE["rows"]
    if (case, a) not in rows or (case, b) not in rows:
        return ""
    pairs = list(zip(rows[case, a], rows[case, b], strict=True))
    lower, level = sum(x < y for x, y in pairs), sum(x == y for x, y in pairs)
    text = f"Wanda README, LLaMA-2 7b/13b/70b: lower on {lower} of {len(pairs)}"
    return text + (f", level on {level}" if level else "")


def claims(results: Results) -> list[Claim]:
    """The papers' claims, judged over the seeds (paired: every method prunes the seed's same
    trained model). Perplexity comparisons: "A reaches a lower perplexity than B" has the
    effect ``100 (PPL_B / PPL_A - 1)``, in % of A's perplexity, per seed; the rise claims compare
    the perplexity each method adds to the dense model's; the cost claims read one machine's
    clock (reported, never asserted). Which claims are asserted is computed from the chapter's
    calibration (:func:`minipruner.book.calibration.apply`)."""
    s = results.settings
    dense = dense_ppl(results)
    found = []
    # (A, B): A beats B at every level of the sweep; magnitude against Wanda, the converse of
    # the papers' claim, at the unstructured levels (where the comparison groups differ)
    unstructured = [lv for lv in levels(s) if lv[0] == "unstructured"]
    for a, b, where in (
        (SPARSEGPT, MAGNITUDE, levels(s)),
        (WANDA, MAGNITUDE, levels(s)),
        (SPARSEGPT, WANDA, levels(s)),
        (MAGNITUDE, WANDA, unstructured),
    ):
        for pattern, sp in where:
            found.append(
                exceeds(
                    f"At {level_name(pattern, sp)}: {label(a)} reaches a lower perplexity than "
                    f"{label(b)}",
                    _rel(ppl(results, a, pattern, sp), ppl(results, b, pattern, sp)),
                    scale=100,
                    unit="%",
                    paper=readme_says(a, b, pattern, sp),
                )
            )
    first = s["sparsities"][0]  # 50 % on the page
    rise_mag = ppl(results, MAGNITUDE, "unstructured", first) - dense
    for a in (SPARSEGPT, WANDA):
        found.append(
            exceeds(
                f"At {level_name('unstructured', first)}: {label(a)} adds less than half the "
                f"perplexity that {label(MAGNITUDE)} adds to the dense model's (effect: half of "
                "magnitude's rise minus its own)",
                0.5 * rise_mag,
                ppl(results, a, "unstructured", first) - dense,
                unit="perplexity",
            )
        )
    for sp in group_levels(s):
        name = level_name("unstructured", sp)
        found.append(
            exceeds(
                f"At {name}: Wanda with per-output groups reaches a lower perplexity than with "
                "one group per layer (the Wanda paper's ablation)",
                _rel(group_ppl(results, WANDA, "row", sp), group_ppl(results, WANDA, "layer", sp)),
                scale=100,
                unit="%",
            )
        )
        found.append(
            exceeds(
                f"At {name}: Wanda with one group per layer reaches a lower perplexity than with "
                "per-output groups (the converse of the Wanda paper's ablation)",
                _rel(group_ppl(results, WANDA, "layer", sp), group_ppl(results, WANDA, "row", sp)),
                scale=100,
                unit="%",
            )
        )
        found.append(
            exceeds(
                f"At {name}: Wanda's score reaches a lower perplexity than magnitude's, both with "
                "one group per layer",
                _rel(
                    group_ppl(results, WANDA, "layer", sp),
                    group_ppl(results, MAGNITUDE, "layer", sp),
                ),
                scale=100,
                unit="%",
            )
        )
    exponents = cost_exponents(results)
    found.append(
        exceeds(
            "SparseGPT's time per layer grows faster with the layer's width than Wanda's "
            "(fitted exponent of the width, per seed)",
            exponents[SPARSEGPT],
            exponents[WANDA],
            unit="exponent",
            over=TIMING,  # this machine's clock: reported, never asserted
        )
    )
    found.append(
        exceeds(
            "SparseGPT takes longer per layer of the model than Wanda, calibration passes "
            f"included (at {level_name('unstructured', first)}, per seed)",
            np.log10(seconds_per_layer(results, SPARSEGPT) / seconds_per_layer(results, WANDA)),
            unit="log10(time ratio)",
            over=TIMING,
        )
    )
    return calibration.apply(results, found, VERSION)
