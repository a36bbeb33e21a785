"""Gymnasium environments built on :mod:`covercast.simulators` (no torch import)."""
