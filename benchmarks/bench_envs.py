"""Benchmark the environments: random-action steps/s beside CartPole and RecoGym.

Usage::

    python benchmarks/bench_envs.py                         # the full table (about a minute)
    python benchmarks/bench_envs.py --steps 5000 --repeats 1 --out bench_envs.csv
"""

from __future__ import annotations

import argparse

from covercast.experiments.bench_envs import bench_envs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20_000,
                    help="steps per timed run of each single-user env and CartPole")
    ap.add_argument("--n-users", type=int, default=10_000, help="users of the vector env")
    ap.add_argument("--vector-steps", type=int, default=100, help="slots per vector-env run")
    ap.add_argument("--recogym-steps", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per entry")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-recogym", action="store_true", help="skip RecoGym even if installed")
    ap.add_argument("--out", default=None, help="also write the table to this CSV file")
    args = ap.parse_args(argv)
    bench_envs(steps=args.steps, n_users=args.n_users, vector_steps=args.vector_steps,
               recogym_steps=args.recogym_steps, repeats=args.repeats, seed=args.seed,
               include_recogym=not args.no_recogym, progress=True, out=args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
