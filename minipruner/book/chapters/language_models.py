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
"""

from __future__ import annotations

import copy
import functools
import time
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
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
from ...experiments.tables import markdown_table
from ...methods import get_method, make_pruner
from ...methods.layerwise import (
    group_mask,
    obc_prune,
    parse_pattern,
    sparsegpt_prune,
    wanda_scores,
)
from .. import calibration
from ..claims import TIMING, Claim, exceeds

VERSION = 1
GRID = ("seeds", "methods", "sparsities", "patterns", "group_sparsities")
TITLE = "Layer-wise one-shot pruning of language models"
EXPLORER = "language_models_explorer"  # its explorer in minipruner.book.explorers
TIMED = ("cost",)  # measure time: run with no other configuration beside them
MAGNITUDE, WANDA, SPARSEGPT = "magnitude-pattern", "wanda", "sparsegpt"
METHODS = (MAGNITUDE, WANDA, SPARSEGPT)
"""The page's methods, by their ids in :data:`minipruner.methods.METHODS` (results are keyed
by id; the page prints each method's label)."""
DEFAULT_GROUPS = {MAGNITUDE: "layer", WANDA: "row"}
"""Each method's comparison group for an unstructured mask (as the papers run them: one
threshold per layer for magnitude, per output row for Wanda); ``groups`` runs the other."""
HEADLINES = (
    ("At 2:4:", "SparseGPT reaches", "than Wanda"),
    ("At 50 %:", "Wanda with per-output groups"),
    ("At 50 %:", "SparseGPT adds"),
)
"""The claims (words of their statements) the README's summary table shows for this chapter."""

PAPER_TABLE = {
    "source": "locuslab/wanda, README.md (section 'Pruning LLaMA-2'), commit 8e8fc87",
    "metric": "WikiText perplexity",
    "models": ["llama2-7b", "llama2-13b", "llama2-70b"],
    "dense": [5.12, 4.57, 3.12],
    "rows": {
        ("unstructured 50%", MAGNITUDE): [14.89, 6.37, 4.98],
        ("unstructured 50%", SPARSEGPT): [6.51, 5.63, 3.98],
        ("unstructured 50%", WANDA): [6.42, 5.56, 3.98],
        ("4:8", MAGNITUDE): [16.48, 6.76, 5.58],
        ("4:8", SPARSEGPT): [8.12, 6.60, 4.59],
        ("4:8", WANDA): [7.97, 6.55, 4.47],
        ("2:4", MAGNITUDE): [54.59, 8.33, 6.33],
        ("2:4", SPARSEGPT): [10.17, 8.32, 5.40],
        ("2:4", WANDA): [11.02, 8.27, 5.16],
    },
}
"""The papers' own numbers that can be traced: the table of LLaMA-2 perplexities in the Wanda
repository's README (file, repository and commit in ``source``). SparseGPT's README gives
commands, not numbers; the papers' tables are not quoted here (not checked)."""


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


def levels(settings: dict[str, Any]) -> list[tuple[str, float]]:
    """Every ``(pattern, sparsity)`` the sweep runs: each unstructured sparsity, then each N:M
    pattern at its own sparsity ``1 - N/M``."""
    out = [("unstructured", float(s)) for s in settings["sparsities"]]
    for p in settings["patterns"]:
        n, m = parse_pattern(p)  # type: ignore[misc]
        out.append((p, 1 - n / m))
    return out


def level_name(pattern: str, sparsity: float) -> str:
    """``"50 %"`` for an unstructured sparsity, the pattern (``"2:4"``) otherwise."""
    return f"{100 * sparsity:.0f} %" if pattern == "unstructured" else pattern


def label(method: str) -> str:
    """The method's label in the method table (what the page prints)."""
    return get_method(method).label


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


# ------------------------------------------------------------------ reading the results


def ppl(results: Results, method: str, pattern: str, sparsity: float) -> np.ndarray:
    """The sweep's perplexity of ``method`` at ``(pattern, sparsity)``, one entry per seed."""
    return results.values(
        "ppl", experiment="sweep", method=method, pattern=pattern, sparsity=sparsity
    )


def dense_ppl(results: Results) -> np.ndarray:
    """The dense models' perplexity, one entry per seed."""
    return results.values("ppl", experiment="dense")


def group_levels(settings: dict[str, Any]) -> list[float]:
    """The sparsities of the comparison-group ablation that the sweep also ran (the method's
    default group comes from the sweep)."""
    return [float(x) for x in settings["group_sparsities"] if x in settings["sparsities"]]


def group_ppl(results: Results, method: str, groups: str, sparsity: float) -> np.ndarray:
    """Perplexity of ``method`` with comparison group ``groups`` at an unstructured
    ``sparsity`` (the method's default group from the sweep, the other from ``groups``)."""
    if groups == DEFAULT_GROUPS[method]:
        return ppl(results, method, "unstructured", sparsity)
    return results.values(
        "ppl", experiment="groups", method=method, groups=groups, sparsity=sparsity
    )


def cost_exponents(results: Results) -> dict[str, np.ndarray]:
    """Per method, per seed: the slope of ``log(seconds)`` against ``log(width)`` fitted over the
    widths the cost experiment ran (how the time per layer grows with the width)."""
    out: dict[str, list[float]] = {}
    for r in results.select(experiment="cost"):
        for method, by_width in r["layer_seconds"].items():
            if len(by_width) < 2:
                continue  # one width: no slope
            d = np.array([float(k) for k in by_width])
            t = np.array(list(by_width.values()))
            out.setdefault(method, []).append(float(np.polyfit(np.log(d), np.log(t), 1)[0]))
    return {m: np.array(v) for m, v in out.items()}


def seconds_per_layer(results: Results, method: str) -> np.ndarray:
    """Per seed: the seconds ``method`` took per layer of the model at the first unstructured
    sparsity of the sweep (50 % on the page; calibration passes included)."""
    first = results.settings["sparsities"][0]
    rows = results.select(experiment="sweep", method=method, pattern="unstructured", sparsity=first)
    return np.array([r["prune_seconds"] / r["layers"] for r in rows])


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


# ------------------------------------------------------------------ figures and tables

COLORS = {MAGNITUDE: "tab:gray", WANDA: "tab:orange", SPARSEGPT: "tab:blue", "obc": "tab:purple"}


def perplexity_figure(results: Results) -> Figure:
    """Left: perplexity against unstructured sparsity per method (mean ± sd over seeds), the
    dense model dashed. Right: the first unstructured sparsity (50 %) against the N:M patterns
    (4:8, 2:4), per method."""
    s = results.settings
    fig = Figure(figsize=(10, 3.6), layout="tight")
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.4, 1]})
    xs = 100 * np.array(s["sparsities"])
    dense = dense_ppl(results).mean()
    for m in s["methods"]:
        v = np.array([ppl(results, m, "unstructured", sp) for sp in s["sparsities"]])
        left.errorbar(
            xs,
            v.mean(1),
            yerr=v.std(1, ddof=1),
            marker="o",
            capsize=3,
            color=COLORS[m],
            label=label(m),
        )
    left.axhline(dense, color="k", ls="--", lw=1, label="dense")
    left.set_xlabel("weights removed (%)")
    left.set_ylabel("test perplexity (bytes)")
    left.legend(fontsize=8)
    cases = [("unstructured", s["sparsities"][0])]
    cases += [lv for lv in levels(s) if lv[0] != "unstructured"]
    width = 0.8 / len(s["methods"])
    for j, m in enumerate(s["methods"]):
        v = np.array([ppl(results, m, p, sp) for p, sp in cases])
        right.bar(
            np.arange(len(cases)) + (j - (len(s["methods"]) - 1) / 2) * width,
            v.mean(1),
            width,
            yerr=v.std(1, ddof=1),
            color=COLORS[m],
            capsize=2,
            label=label(m),
        )
    right.axhline(dense, color="k", ls="--", lw=1)
    right.set_xticks(range(len(cases)), [level_name(p, sp) for p, sp in cases])
    right.set_ylim(0.9 * dense, None)
    right.set_title("unstructured and N:M", fontsize=9)
    return fig


def groups_figure(results: Results) -> Figure:
    """The comparison-group ablation: perplexity over dense against sparsity for each score
    (magnitude, Wanda) with each group (per layer, per output row)."""
    s = results.settings
    fig = Figure(figsize=(5.5, 3.6), layout="tight")
    ax = fig.subplots()
    dense = dense_ppl(results)
    xs = 100 * np.array(group_levels(s))
    if not len(xs):
        ax.text(0.5, 0.5, "no ablation sparsity in the sweep", ha="center", transform=ax.transAxes)
        return fig
    for m in (MAGNITUDE, WANDA):
        for groups, ls in (("layer", "-"), ("row", ":")):
            v = np.array([group_ppl(results, m, groups, sp) / dense for sp in group_levels(s)])
            name = "one group per layer" if groups == "layer" else "per-output groups"
            ax.plot(xs, v.mean(1), ls=ls, marker="o", color=COLORS[m], label=f"{label(m)}, {name}")
    ax.set_xlabel("weights removed (%)")
    ax.set_ylabel("perplexity / dense perplexity")
    ax.legend(fontsize=7)
    return fig


def cost_figure(results: Results) -> Figure:
    """Seconds per layer against the layer's width (square random layers, 50 %), log-log, the
    median over seeds, with each method's fitted exponent."""
    rows = results.select(experiment="cost")
    exps = cost_exponents(results)
    fig = Figure(figsize=(5.5, 3.6), layout="tight")
    ax = fig.subplots()
    for m in rows[0]["layer_seconds"]:
        widths = sorted(int(k) for k in rows[0]["layer_seconds"][m])
        t = np.median([[r["layer_seconds"][m][str(d)] for d in widths] for r in rows], axis=0)
        ax.loglog(
            widths,
            t,
            marker="o",
            color=COLORS[m],
            label=f"{label(m)} (exponent {np.median(exps.get(m, np.nan)):.1f})",
        )
    widths = sorted({int(k) for r in rows for v in r["layer_seconds"].values() for k in v})
    ax.set_xticks(widths, [str(d) for d in widths])
    ax.minorticks_off()
    ax.set_xlabel("layer width d (a d x d layer)")
    ax.set_ylabel("seconds per layer")
    ax.legend(fontsize=7)
    return fig


def figures(results: Results) -> dict[str, Figure]:
    """The chapter's three plots."""
    return {
        "perplexity": perplexity_figure(results),
        "groups": groups_figure(results),
        "cost": cost_figure(results),
    }


def _cell(v: np.ndarray) -> str:
    return f"{v.mean():.2f} ± {v.std(ddof=1) if v.size > 1 else 0.0:.2f}"


def table(results: Results) -> str:
    """Test perplexity (mean ± sample sd over seeds) per level and method, the dense model
    first."""
    s = results.settings
    rows = [["dense", *[_cell(dense_ppl(results))] * len(s["methods"])]]
    for pattern, sp in levels(s):
        rows.append(
            [level_name(pattern, sp), *[_cell(ppl(results, m, pattern, sp)) for m in s["methods"]]]
        )
    return markdown_table(["level", *[label(m) for m in s["methods"]]], rows)


def paper_ratios(results: Results) -> dict[tuple[str, str], tuple[list[float], float | None]]:
    """Per row of :data:`PAPER_TABLE` (``(case, method)``): the README's perplexity over its dense
    model's, one per model, and ours (mean over seeds of the ratio to the seed's dense model;
    ``None`` where the sweep did not run that case)."""
    dense = dense_ppl(results)
    out = {}
    for (case, m), values in PAPER_TABLE["rows"].items():
        pattern = "unstructured" if case.startswith("unstructured") else case
        run = results.select(experiment="sweep", method=m, pattern=pattern, sparsity=0.5)
        ours = float((ppl(results, m, pattern, 0.5) / dense).mean()) if run else None
        readme = [v / d for v, d in zip(values, PAPER_TABLE["dense"], strict=True)]
        out[case, m] = (readme, ours)
    return out


def paper_table(results: Results) -> str:
    """The Wanda README's LLaMA-2 perplexities (:data:`PAPER_TABLE`) beside ours, each as the
    ratio to its dense model (:func:`paper_ratios`; the absolute numbers are in other units:
    word pieces there, bytes here)."""
    rows = []
    for (case, m), (readme, ours) in paper_ratios(results).items():
        cell = "not run" if ours is None else f"{ours:.3f}"
        rows.append([case, label(m), *[f"{r:.2f}" for r in readme], cell])
    header = ["pattern", "method", *[f"{n} (README)" for n in PAPER_TABLE["models"]], "TinyGPT"]
    return markdown_table(header, rows)


def cost_table(results: Results) -> str:
    """Seconds per square layer (median over seeds) per method and width, and the fitted
    exponent (median)."""
    rows_in = results.select(experiment="cost")
    exps = cost_exponents(results)
    widths = sorted({int(k) for r in rows_in for v in r["layer_seconds"].values() for k in v})
    rows = []
    for m in rows_in[0]["layer_seconds"]:
        cells = []
        for d in widths:
            t = [r["layer_seconds"][m].get(str(d)) for r in rows_in]
            cells.append("" if t[0] is None else f"{1000 * np.median(t):.2f}")
        rows.append([label(m), *cells, f"{np.median(exps.get(m, np.nan)):.2f}"])
    return markdown_table(["method", *[f"d = {d} (ms)" for d in widths], "exponent"], rows)
