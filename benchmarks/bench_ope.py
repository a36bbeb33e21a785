"""Time all per-decision OPE estimators with CIs on 1,000,000 decisions (target: < 10 s).

Also times logging ``--n`` decisions with the vector collector against the single-user one
(``--no-collect`` skips it).

Usage: ``python benchmarks/bench_ope.py [--n 1000000] [--repeats 3] [--out FILE.json]``
(the same as ``covercast bench ope``).
"""

from __future__ import annotations

import argparse

from covercast.experiments.bench_ope import bench_ope

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--n-actions", type=int, default=6)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None)
    p.add_argument("--no-collect", action="store_true", help="skip the collector timing")
    a = p.parse_args()
    bench_ope(n=a.n, n_actions=a.n_actions, repeats=a.repeats, seed=a.seed, out=a.out,
              collect_decisions=None if a.no_collect else a.n)
