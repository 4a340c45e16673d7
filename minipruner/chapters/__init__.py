"""One module per chapter: the experiments its notebook reports, runnable on their own.

See :mod:`minipruner.results` for the five functions each module defines.
"""
