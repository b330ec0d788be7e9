"""Shared pytest configuration: hypothesis profiles.

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
