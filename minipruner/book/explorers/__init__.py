"""Each chapter's explorer, described once (controls, what a state computes, how it is drawn)
and shown by :func:`minipruner.book.widgets.explorer`: live in a Jupyter kernel, with controls
the static page cannot offer, and precomputed on the site.

Every ``*_explorer`` function returns the explorer; the matching ``*_state`` function is
what one state computes (the numbers the figure draws), so that tests and readers can call it
directly. Whatever is expensive is read from the chapter's stored results where the state is
one the chapter ran, and computed (and cached per state) only where it is new.

One module per chapter (:mod:`.magnitude`, :mod:`.lookahead`, :mod:`.init_pruning`,
:mod:`.obs`, :mod:`.structured`, :mod:`.language_models`) on the few helpers of
:mod:`.common`; a chapter module names its explorer in ``EXPLORER``
(:func:`minipruner.book.chapters.chapter_explorer` finds it here).
"""

from .common import fine_sparsities
from .init_pruning import TEMPERATURES, init_pruning_explorer, init_pruning_state
from .language_models import PATTERNS, language_models_explorer, language_models_state
from .lookahead import lookahead_explorer, lookahead_state
from .magnitude import BLOCK, magnitude_explorer, magnitude_state
from .obs import DAMPINGS, obs_explorer, obs_state
from .structured import structured_explorer, structured_state

__all__ = [
    "BLOCK",
    "DAMPINGS",
    "PATTERNS",
    "TEMPERATURES",
    "fine_sparsities",
    "init_pruning_explorer",
    "init_pruning_state",
    "language_models_explorer",
    "language_models_state",
    "lookahead_explorer",
    "lookahead_state",
    "magnitude_explorer",
    "magnitude_state",
    "obs_explorer",
    "obs_state",
    "structured_explorer",
    "structured_state",
]
