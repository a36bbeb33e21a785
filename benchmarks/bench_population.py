"""Benchmark the population engine: user-steps per second and memory, per population size.

Usage::

    python benchmarks/bench_population.py                      # N = 1, 1,000, 100,000
    python benchmarks/bench_population.py --n 100000 --days 7 --repeats 5 --out bench.csv
"""

from __future__ import annotations

import argparse

from covercast.experiments.bench import bench_population


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[1, 1000, 100_000],
                    help="population sizes (default: 1 1000 100000)")
    ap.add_argument("--days", type=int, default=None,
                    help="simulated days per run (default: scaled to the size)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per size")
    ap.add_argument("--out", default=None, help="also write the table to this CSV file")
    args = ap.parse_args(argv)
    bench_population(ns=args.n, days=args.days, seed=args.seed, repeats=args.repeats,
                     out=args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
