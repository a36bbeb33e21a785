"""Moved to :mod:`covercast.covers.procedural` (issue 17).

Kept only for ``covercast/experiments/scheduling.py``'s ``from covercast.generators.procedural
import default_bank``; delete this file once that line imports ``covercast.covers.procedural``.
"""

from covercast.covers.procedural import default_bank

__all__ = ["default_bank"]
