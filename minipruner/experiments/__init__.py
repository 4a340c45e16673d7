"""Running experiments: the protocol a chapter module follows (:mod:`.protocol`), the plan of
a chapter's missing work (:mod:`.plan`), the result records and their files
(:mod:`.records`), the serial and Ray executors over one plan (:mod:`.cluster`), overrides of
a chapter's settings (:mod:`.overrides`) and the tables results are printed in
(:mod:`.tables`).

Imports only :mod:`minipruner.core` (and, through a chapter's own code, whatever that
chapter imports); ``tests/test_imports.py`` checks it.
"""
