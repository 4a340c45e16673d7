"""How :mod:`minipruner.methods.lookahead` reads a model: the order of its prunable layers, each
layer's neighbours along the main path, and the batch norm and ReLU that follow each layer.

Lookahead pruning scores a weight by the norms of the layers before and after it (chapter
2), so it needs each layer's neighbours. :func:`lookahead_chain` finds them by tracing one
forward pass through autograd's graph (an example input, default zeros of
``model.input_shape``); without an input the layers are taken in registration order. A
model whose layers are not a simple chain (skip connections) is read along its main path,
with a warning, as the LAP paper does.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import torch
from torch import Tensor, nn

from ..core.masks import example_input, prunable_modules

__all__ = ["LayerChain", "lookahead_chain"]

_INPUT = "<input>"
_OUTPUT = "<output>"
_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
_RELU_TYPES = (nn.ReLU, nn.ReLU6)
_CONV_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


# --------------------------------------------------------------------------------------
# How the model is read: layer order, neighbours, BatchNorms and ReLUs of each layer
# --------------------------------------------------------------------------------------


@dataclass
class LayerChain:
    """How lookahead reads a model's prunable layers (names as in ``prunable(model)``).

    ``order``: layers in forward order (execution order when traced, else registration
    order). ``prev[name]`` / ``next[name]``: the neighbours whose weights enter the
    lookahead score (``None`` = no neighbour, counts as 1). ``main_path``: the longest chain
    of layers from input to output; skip-path layers (e.g. 1x1 shortcut convs) are off it
    and take as neighbours their nearest main-path producer and consumer.
    ``units_per_channel[(a, b)]``: inputs of ``b`` per output channel of ``a`` (1, or the
    ``P`` positions of a conv output flattened into a linear layer). ``is_chain``: the layers
    form a simple chain (assumed when not ``traced``). ``ignored``: data-flow edges
    ``(producer, consumer)`` that the scores ignore (skip connections; ``"<input>"`` and
    ``"<output>"`` stand for the model's input and output). ``batchnorms[name]``: the
    BatchNorm modules on the data path from the layer to its next neighbour (or to the
    output); ``activations[name]``: the first ReLU module on that path, with the number of
    the call (a module may run several times per forward pass); traced models only.
    """

    order: list[str]
    prev: dict[str, str | None]
    next: dict[str, str | None]
    main_path: list[str]
    units_per_channel: dict[tuple[str, str], int]
    is_chain: bool
    traced: bool
    ignored: list[tuple[str, str]] = field(default_factory=list)
    batchnorms: dict[str, list[nn.Module]] = field(default_factory=dict)
    activations: dict[str, tuple[nn.Module, int]] = field(default_factory=dict)


def _out_units(module: nn.Module) -> int:
    return int(module.weight.shape[0])


def _in_units(module: nn.Module) -> int:
    return int(module.weight.shape[1])


def _fit(a: str, ma: nn.Module, b: str, mb: nn.Module) -> int:
    """Inputs of layer ``b`` per output channel of layer ``a``; ValueError if they do not fit."""
    n_out, n_in = _out_units(ma), _in_units(mb)
    if n_out == n_in:
        return 1
    if isinstance(ma, _CONV_TYPES) and isinstance(mb, nn.Linear):
        if n_in % n_out == 0:
            return n_in // n_out
        raise ValueError(
            f"layers {a!r} ({n_out} output channels) and {b!r} ({n_in} inputs) do not fit: "
            f"a linear layer after a flattened conv needs in_features = channels * positions, "
            f"but {n_in} is not a multiple of {n_out}"
        )
    raise ValueError(
        f"layers {a!r} ({n_out} outputs) and {b!r} ({n_in} inputs) do not fit: the output "
        f"units of one prunable layer must be the input units of the next"
    )


def _check_modules(modules: Mapping[str, nn.Module]) -> None:
    for name, m in modules.items():
        if isinstance(m, _CONV_TYPES) and m.groups != 1:
            raise ValueError(
                f"layer {name!r} is a grouped convolution (groups={m.groups}); lookahead "
                f"scores support ungrouped convolutions and linear layers only"
            )


def _start_node(t: object, x: Tensor) -> object:
    """The autograd node that produced ``t`` (``_INPUT`` for the model input itself)."""
    if not isinstance(t, Tensor):
        return None
    if t is x:
        return _INPUT
    return t.grad_fn


@dataclass
class _Trace:
    order: list[str]  # prunable layers in execution order
    producers: dict[str, set[str]]  # layer or _OUTPUT -> layers (or _INPUT) it reads from
    extras: list[tuple[nn.Module, int]]  # BN / ReLU calls (module, call number)
    extra_producers: list[set[str]]  # for each call: the layers its input depends on
    passed: dict[str, set[int]]  # layer or _OUTPUT -> calls between it and its producers


def _trace(model: nn.Module, x: Tensor) -> _Trace:
    """Run ``model`` once on ``x[:1]`` and read the data flow from the autograd graph.

    Walking back from a layer's input through the graph until the outputs of prunable
    layers (or the model input) gives the layers it reads from directly, and the BN / ReLU
    calls that lie in between.
    """
    modules = prunable_modules(model)
    _check_modules(modules)
    names = {id(m): n for n, m in modules.items()}
    if not x.is_floating_point():
        raise ValueError("tracing the model needs a floating-point example input")
    x = x.detach()[:1].clone().requires_grad_(True)

    order: list[str] = []
    calls: dict[str, int] = dict.fromkeys(modules, 0)
    in_nodes: dict[str, object] = {}
    out_nodes: dict[object, str] = {}
    extras: list[tuple[nn.Module, int]] = []
    extra_in: list[object] = []
    extra_out: dict[object, int] = {}
    extra_calls: dict[int, int] = {}

    def pre_layer(module: nn.Module, args: tuple[Any, ...]) -> None:
        name = names[id(module)]
        if calls[name] == 0 and args:
            in_nodes[name] = _start_node(args[0], x)

    def post_layer(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        name = names[id(module)]
        calls[name] += 1
        if calls[name] == 1:
            order.append(name)
            if isinstance(output, Tensor) and output.grad_fn is not None:
                out_nodes[output.grad_fn] = name

    def pre_extra(module: nn.Module, args: tuple[Any, ...]) -> None:
        k = extra_calls.get(id(module), 0)
        extra_calls[id(module)] = k + 1
        extras.append((module, k))
        extra_in.append(_start_node(args[0], x) if args else None)

    def post_extra(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if isinstance(output, Tensor) and output.grad_fn is not None:
            extra_out.setdefault(output.grad_fn, len(extras) - 1)

    handles = []
    states = {m: m.training for m in model.modules()}
    try:
        for m in modules.values():
            handles.append(m.register_forward_pre_hook(pre_layer))
            handles.append(m.register_forward_hook(post_layer))
        for m in model.modules():
            if isinstance(m, _BN_TYPES + _RELU_TYPES):
                handles.append(m.register_forward_pre_hook(pre_extra))
                handles.append(m.register_forward_hook(post_extra))
        model.eval()
        with torch.enable_grad():
            try:
                out = model(x)
            except Exception as e:  # the model cannot run on the example input
                raise ValueError(
                    f"could not run {type(model).__name__} on an example input of shape "
                    f"{tuple(x.shape)} to find its layer order: {e}"
                ) from e
    finally:
        for h in handles:
            h.remove()
        for m, training in states.items():
            m.training = training

    unused = [n for n, c in calls.items() if c == 0]
    if unused:
        raise ValueError(f"prunable layer(s) {unused} are not used in the forward pass")
    repeated = [n for n, c in calls.items() if c > 1]
    if repeated:
        raise ValueError(
            f"prunable layer(s) {repeated} run more than once in a forward pass (shared "
            f"weights); lookahead scores need each layer to run once"
        )

    def walk(starts: list[object]) -> tuple[set[str], set[int]]:
        found: set[str] = set()
        passed: set[int] = set()
        stack, seen = list(starts), set()
        while stack:
            node = stack.pop()
            if node is _INPUT:
                found.add(_INPUT)
                continue
            if node is None or node in seen:
                continue
            seen.add(node)
            if node in out_nodes:
                found.add(out_nodes[node])
                continue
            if node in extra_out:
                passed.add(extra_out[node])
            if getattr(node, "variable", None) is x:
                found.add(_INPUT)
                continue
            stack.extend(nxt for nxt, _ in node.next_functions)
        return found, passed

    producers: dict[str, set[str]] = {}
    passed: dict[str, set[int]] = {}
    for n in order:
        producers[n], passed[n] = walk([in_nodes.get(n)])
    if isinstance(out, dict):
        outs = list(out.values())
    elif isinstance(out, (tuple, list)):
        outs = list(out)
    else:
        outs = [out]
    producers[_OUTPUT], passed[_OUTPUT] = walk([t.grad_fn for t in outs if isinstance(t, Tensor)])
    extra_producers = [walk([node])[0] for node in extra_in]
    return _Trace(order, producers, extras, extra_producers, passed)


def _registration_chain(model: nn.Module) -> LayerChain:
    """Layers in registration order, each one's neighbours the adjacent layers."""
    modules = prunable_modules(model)
    _check_modules(modules)
    order = list(modules)
    ids = {id(m): n for n, m in modules.items()}
    batchnorms: dict[str, list[nn.Module]] = {}
    current = None
    for m in model.modules():
        if id(m) in ids:
            current = ids[id(m)]
        elif current is not None and isinstance(m, _BN_TYPES):
            batchnorms.setdefault(current, []).append(m)
    prev = {n: (order[i - 1] if i else None) for i, n in enumerate(order)}
    nxt = {n: (order[i + 1] if i + 1 < len(order) else None) for i, n in enumerate(order)}
    units = {(a, b): _fit(a, modules[a], b, modules[b]) for a, b in pairwise(order)}
    return LayerChain(order, prev, nxt, list(order), units, True, False, [], batchnorms, {})


def _traced_chain(model: nn.Module, x: Tensor) -> LayerChain:
    tr = _trace(model, x)
    order, producers = tr.order, tr.producers
    modules = prunable_modules(model)
    index = {n: i for i, n in enumerate(order)}

    # Main path: the longest chain of layers from input to output (ties: the later layer).
    depth: dict[str, int] = {_INPUT: 0}
    parent: dict[str, str] = {}

    def deepest(cands: set[str]) -> str:
        return max(cands or {_INPUT}, key=lambda c: (depth[c], index.get(c, -1)))

    for n in order:
        parent[n] = deepest(producers[n])
        depth[n] = depth[parent[n]] + 1
    end = deepest(producers[_OUTPUT])
    if end == _INPUT:
        end = order[-1]
    path: list[str] = []
    while end != _INPUT:
        path.append(end)
        end = parent[end]
    path.reverse()
    on_path = set(path)

    prev: dict[str, str | None] = {}
    nxt: dict[str, str | None] = {}
    for i, n in enumerate(path):
        prev[n] = path[i - 1] if i else None
        nxt[n] = path[i + 1] if i + 1 < len(path) else None
    for n in order:
        if n in on_path:
            continue
        ps = [p for p in producers[n] if p != _INPUT]
        ps = [p for p in ps if p in on_path] or ps
        prev[n] = max(ps, key=index.__getitem__) if ps else None
        cs = [c for c in order if n in producers[c]]
        cs = [c for c in cs if c in on_path] or cs
        nxt[n] = min(cs, key=index.__getitem__) if cs else None

    ignored = []
    for n in [*order, _OUTPUT]:
        if n == _OUTPUT:
            expected, got = path[-1], producers[_OUTPUT] or {path[-1]}
        else:
            expected, got = prev[n] or _INPUT, producers[n] or {_INPUT}
        ignored += [(p, n) for p in sorted(got, key=lambda c: index.get(c, -1)) if p != expected]
    is_chain = not ignored and len(path) == len(order)

    units = {}
    for n in order:
        if prev[n] is not None:
            units[(prev[n], n)] = _fit(prev[n], modules[prev[n]], n, modules[n])
        if nxt[n] is not None:
            units[(n, nxt[n])] = _fit(n, modules[n], nxt[n], modules[nxt[n]])
    prev = {n: prev[n] for n in order}
    nxt = {n: nxt[n] for n in order}

    # The BNs and the ReLU of a layer are those between it and its next neighbour (or the
    # model output): calls whose input depends on the layer and whose output reaches the
    # neighbour's input without passing through another prunable layer.
    batchnorms: dict[str, list[nn.Module]] = {}
    activations: dict[str, tuple[nn.Module, int]] = {}
    for n in order:
        consumer = nxt[n] or _OUTPUT
        for i in sorted(tr.passed[consumer]):
            if n not in tr.extra_producers[i]:
                continue
            module, k = tr.extras[i]
            if isinstance(module, _BN_TYPES):
                bns = batchnorms.setdefault(n, [])
                if all(b is not module for b in bns):
                    bns.append(module)
            elif n not in activations:
                activations[n] = (module, k)
    return LayerChain(
        order, prev, nxt, path, units, is_chain, True, ignored, batchnorms, activations
    )


def _short(items: list[str], k: int = 4) -> str:
    return ", ".join(items[:k]) + (f", ... ({len(items)} in all)" if len(items) > k else "")


def _analyse(model: nn.Module, x: Tensor | None, stacklevel: int = 3) -> LayerChain:
    if x is None and getattr(model, "input_shape", None) is not None:
        x = example_input(model)
    chain = _registration_chain(model) if x is None else _traced_chain(model, x)
    if not chain.is_chain:
        off = [n for n in chain.order if n not in set(chain.main_path)]
        msg = (
            f"the prunable layers of {type(model).__name__} do not form a simple chain "
            f"(skip connections: {_short([f'{a} -> {b}' for a, b in chain.ignored])}"
        )
        if off:
            msg += f"; layers off the main path: {_short(off)}"
        msg += (
            "). Lookahead scores use each layer's neighbours along the main path in forward "
            "order and ignore skip connections, as Park et al. (2020) do."
        )
        warnings.warn(msg, UserWarning, stacklevel=stacklevel)
    return chain


def lookahead_chain(model: nn.Module, example: Tensor | None = None) -> LayerChain:
    """Work out how lookahead reads ``model``: layer order, neighbours, BatchNorms, ReLUs.

    The neighbours of ``W_i`` in ``L_i(w) = |w| ||W_{i-1}[k, :]|| ||W_{i+1}[:, j]||``
    are found from the model itself. If an example input is available (``example``, else a zero
    input built from ``model.input_shape``) the model runs once and the data flow between
    prunable layers is read from the autograd graph: the layers run in forward order, the
    main path is the longest chain of layers from input to output, and each layer's
    neighbours are the adjacent main-path layers. Layers off the main path (1x1 shortcut
    convs) take their nearest main-path producer and consumer. When the layers do not form
    a simple chain (skip connections, as in ResNets) a ``UserWarning`` names the skip
    connections and off-path layers. Without an example input the layers are taken in
    registration order and skip connections cannot be detected.

    Raises ``ValueError`` when neighbouring layers do not fit (one layer's output units
    must be the next one's inputs, or ``in_features = C * P`` for a linear layer after a
    conv with ``C`` channels and flatten), for grouped convolutions, and for layers that do
    not run exactly once in a forward pass.
    """
    return _analyse(model, example)
