"""How torch runs on the CPU here: the OpenMP wait policy and the torch thread count.

Importing this module (the package does so first) sets ``OMP_WAIT_POLICY=PASSIVE`` unless
the environment already names a policy: busy-waiting OpenMP threads make small matmuls far
slower on a shared 2-core machine. The setting takes effect only if torch has not been
imported yet, which is why the package imports this module before anything else.
:func:`threads` is the one place that sets torch's thread count for a block of work and
restores it afterwards.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402  (after the wait policy, which OpenMP reads when torch loads)


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[int]:
    """Run the block with ``torch.set_num_threads(n)`` and restore the previous count after
    it (also when it raises); ``n=None`` leaves torch's setting as it is. Yields the count in
    force inside the block. Raises ``ValueError`` for ``n < 1``.

    CPU results are reproducible bit for bit only at one thread count, so every run of the
    book's experiments goes through here with the count it records.
    """
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"threads must be a positive integer (or None), got {n!r}")
    previous = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)
