"""Every benchmark in one run, one report: the same as ``covercast bench all``.

Usage::

    python benchmarks/bench_all.py --quick                  # under 5 minutes on 2 cores
    python benchmarks/bench_all.py --out runs/bench         # full sizes (make bench)
    python benchmarks/bench_all.py --only population vector

Writes ``report.md``, ``results.csv``, one CSV per table and ``scaling.png`` to ``--out``
(default ``runs/bench``).
"""

from __future__ import annotations

from covercast.experiments.bench_report import main

if __name__ == "__main__":
    raise SystemExit(main())
