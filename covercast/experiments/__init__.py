"""Experiments: the ``covercast`` command line, reports, statistics and benchmarks."""
