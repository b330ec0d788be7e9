"""Finite-time (bptt) simulator -- placeholder that reuses the dense engine."""

from __future__ import annotations

from .dense import DenseEngine

__all__ = ["BPTTEngine"]


class BPTTEngine(DenseEngine):
    """Finite-time engine (currently the dense implementation)."""

    def __init__(self, net, task):
        super().__init__(net, task, "bptt")
