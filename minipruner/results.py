"""The names notebooks, tests and readers import from ``minipruner.results``, in one place.

The code lives in the modules the results machinery was split into, each importing only
the ones below it (a test checks that no chain of imports leads back to its start):

- :mod:`minipruner.tables`: ``sample_sd``, ``mean_sd_cell``, ``markdown_table``;
- :mod:`minipruner.records`: where results live, one configuration's key and file, and
  :class:`~minipruner.records.Results`;
- :mod:`minipruner.chapters`: the chapter registry and protocol, ``chapter_settings`` and
  ``run_one`` (one configuration as every executor stores it);
- :mod:`minipruner.plan`: the plan of a chapter's missing work (networks, shared runs,
  configurations) that both executors consume;
- :mod:`minipruner.runner`: ``reproduce``, ``calibrate``, ``settings_at``, the serial
  executor and the saved outputs; :mod:`minipruner.cluster`: the Ray executor.

This module defines nothing; none of the modules it imports imports it, so it closes no
import circle.
"""

# Public names, importable from here as before the split (the notebooks read ``mp.results.X``).
from .chapters import (  # noqa: F401
    CHAPTERS,
    chapter_module,
    chapter_name,
    run_one,
    run_shared,
    shared_networks,
    shared_runs,
    train_network,
)
from .records import (  # noqa: F401
    RESULTS_ENV,
    Results,
    result_path,
    results_dir,
    write_json_atomic,
)
from .records import keyed as _keyed  # noqa: F401  (tests/test_chapters.py reads the key fields)
from .runner import (  # noqa: F401
    EXECUTORS,
    calibrate,
    chapter_claims,
    reproduce,
    save_claims,
    save_outputs,
    settings_at,
)
from .tables import markdown_table, mean_sd_cell, sample_sd  # noqa: F401
