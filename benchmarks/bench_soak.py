"""Soak every environment with 10 M random-action env-steps: NaN/inf, RSS growth, determinism.

Usage::

    python benchmarks/bench_soak.py                      # 10 M env-steps (a few minutes)
    python benchmarks/bench_soak.py --steps 200000 --out runs/soak_small

Same as ``covercast bench soak``; see :mod:`covercast.experiments.soak`.
"""

from __future__ import annotations

import argparse

from covercast.experiments.soak import add_soak_arguments, run_soak


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_soak_arguments(ap)
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    return run_soak(ap.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
