"""Shared pytest configuration (tests and doctests): hypothesis profiles, one BLAS thread.

Profiles (select with the environment variable ``HYPOTHESIS_PROFILE``):

* ``default`` -- CI: ~25 examples per property, no deadline (the first call of a numerical
  routine pays for imports and BLAS warm-up), random seeds (``derandomize=False``: every
  run explores new examples; a failure prints the blob to reproduce it).
* ``thorough`` -- 300 examples per property, for a long local run:
  ``HYPOTHESIS_PROFILE=thorough pytest -m property``.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("default", deadline=None, max_examples=25, derandomize=False,
                          print_blob=True)
settings.register_profile("thorough", parent=settings.get_profile("default"),
                          max_examples=300)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


import pytest  # noqa: E402

from linrnn_theory._blas import limit_blas_threads  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _single_blas_thread():
    """All tests run with one OpenBLAS thread: the matrices here are small, and two BLAS
    threads on a shared 2-core machine are up to ~7x slower (measured), besides making
    timings unpredictable."""
    with limit_blas_threads(1):
        yield


# The top-level derivations/ is a link to linrnn_theory/derivations/, whose doctests are
# collected there under their package names; collected through the link, pytest would
# import the same files a second time as a top-level package ``derivations``.
collect_ignore = ["derivations"]
