"""The book: one module per chapter (:mod:`.chapters`: settings, configurations, run,
figures, table, claims), the claims and their statistics (:mod:`.claims`), their calibration
over seed offsets (:mod:`.calibration`), ``reproduce`` and ``calibrate`` (:mod:`.runner`),
and the notebooks' explorers and widgets (:mod:`.explorers`, :mod:`.widgets`).

The top layer: it may import every layer below (:mod:`minipruner.core`,
:mod:`minipruner.methods`, :mod:`minipruner.experiments`).
"""
