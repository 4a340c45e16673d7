"""The core: what is prunable, scores to masks and applying them (:mod:`.masks`), models
(:mod:`.models`), datasets (:mod:`.data`, :mod:`.device_data`, and the text of
:mod:`.language`), training and evaluation (:mod:`.train`), measuring cost (:mod:`.measure`),
pruning a model and measuring it in one call (:mod:`.experiment`), and what training needs
from its surroundings: the scale and seeds (:mod:`.scale`), the network cache
(:mod:`.store`) and torch's thread settings (:mod:`.runtime`).

Nothing here imports from the layers above (:mod:`minipruner.methods`,
:mod:`minipruner.experiments`, :mod:`minipruner.book`); ``tests/test_imports.py`` checks it.
"""
