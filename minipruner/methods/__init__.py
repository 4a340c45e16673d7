"""The methods: the math of each chapter, one module per idea (magnitude pruning,
:mod:`.magnitude`; lookahead, :mod:`.lookahead` over the layer chains of
:mod:`.layer_graph`; pruning at initialisation, :mod:`.init_pruning`; per-sample gradients,
:mod:`.gradients`, the Fisher and its inverse, :mod:`.fisher` (Cholesky) and
:mod:`.fisher_spectrum` (any damping from one eigendecomposition), OBS/WoodFisher, :mod:`.obs`,
and CBS's search, :mod:`.cbs` (its objective, :mod:`.cbs_objective`, and window variant,
:mod:`.cbs_window`); channels
and whole units, :mod:`.channels`, :mod:`.structured`, :mod:`.architectures`; layer-wise
reconstruction of language models, :mod:`.layerwise`), and one table of every method
(:mod:`.table`), re-exported here::

    from minipruner.methods import METHODS, make_pruner

Imports only :mod:`minipruner.core`; ``tests/test_imports.py`` checks it.
"""

from .table import METHODS, NEEDS, Method, get_method, make_pruner

__all__ = ["METHODS", "NEEDS", "Method", "get_method", "make_pruner"]
