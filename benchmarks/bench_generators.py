"""Benchmark the cover generators: covers/s (CPU, and GPU when present), parameters, epoch time.

Usage::

    python benchmarks/bench_generators.py                         # everything, CPU (+ cuda)
    python benchmarks/bench_generators.py --generators vae-iat diffusion --out bench.csv

Prints the table with the issue's targets (32x32 on the CPU: VAE-IAT >= 1,000 covers/s,
diffusion with 20 DDIM steps >= 10 covers/s) and each measurement's ratio to its target. The
same as ``covercast bench generators``.
"""

from __future__ import annotations

import argparse

from covercast.experiments.bench_generators import bench_generators, format_table
from covercast.experiments.generators_cli import add_bench_generators_arguments


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_bench_generators_arguments(ap)
    args = ap.parse_args(argv)
    table = bench_generators(args.devices, generators=args.generators, size=args.size,
                             covers=args.covers, seed=args.seed, repeats=args.repeats,
                             out=args.out)
    print(format_table(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
