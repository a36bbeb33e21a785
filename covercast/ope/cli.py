"""Subcommands for the ``covercast`` CLI: ``experiment ope``, ``bench ope``, ``ope-obd-check``.

:mod:`covercast.experiments.cli` wires them: :func:`add_experiment` on its ``experiment``
sub-parsers, :func:`add_subcommands` on the top level, :func:`cmd_bench_ope` for ``bench ope``.
Each subcommand sets ``func`` (returning an exit code) and has ``--quiet``.
"""

from __future__ import annotations

import argparse
from typing import Any


def cmd_experiment_ope(args: argparse.Namespace) -> int:
    from covercast.experiments.ope_experiment import (
        OPEExperimentConfig,
        fast_config,
        parse_pairs,
        parse_sizes,
        run_fqe_diagnosis,
        run_ope_experiment,
    )

    given = {k: v for k, v in {
        "sizes": parse_sizes(args.sizes) if args.sizes else None,
        "seeds": args.seeds, "horizon_days": args.horizon_days,
        "truth_users": args.truth_users, "n_bootstrap": args.n_bootstrap, "seed": args.seed,
        "seq_sizes": parse_sizes(args.seq_sizes) if args.seq_sizes else None,
        "pairs": parse_pairs(args.pairs) if args.pairs else None}.items() if v is not None}
    cfg = fast_config(**given) if args.fast else OPEExperimentConfig(**given)
    if args.fqe_diagnosis:
        report = run_fqe_diagnosis(args.out, cfg, truth_csv=args.truth_csv,
                                   progress=not args.quiet)
    else:
        report = run_ope_experiment(args.out, cfg, progress=not args.quiet)
    print(f"report: {report}")
    return 0


def cmd_bench_ope(args: argparse.Namespace) -> int:
    from covercast.experiments.bench_ope import bench_ope

    bench_ope(n=args.decisions, repeats=args.repeats, seed=args.seed,
              out=getattr(args, "json", None), progress=True,
              collect_decisions=args.decisions)
    return 0


def cmd_obd_check(args: argparse.Namespace) -> int:
    from covercast.ope.obd_check import obd_check

    table = obd_check(args.out, campaign=args.campaign, seed=args.seed)
    for r in table.itertuples():
        print(f"{r.method:9s} {r.estimator:6s} {r.estimate:.4%} [{r.ci_low:.4%}, "
              f"{r.ci_high:.4%}]  truth {r.truth:.4%}  rel. error {r.rel_error:.1%}")
    print(f"report: {args.out}/obd_check.md")
    return 0


def add_experiment(experiments: Any) -> None:
    """Register ``ope`` on the CLI's ``experiment`` sub-parsers.

    ``covercast experiment ope [--sizes 1k 10k 100k 1M] [--seeds 3] [--fast] [--out runs/ope]``
    (unset options keep :class:`~covercast.experiments.ope_experiment.OPEExperimentConfig`'s
    defaults, or :func:`~covercast.experiments.ope_experiment.fast_config`'s with ``--fast``).
    """
    e = experiments.add_parser("ope", help="score off-policy estimators against on-policy truth",
                               description="Score off-policy estimators against the "
                               "simulator's on-policy truth, over seeds and dataset sizes.")
    e.set_defaults(func=cmd_experiment_ope)
    e.add_argument("--out", default="runs/ope", help="output folder")
    e.add_argument("--fast", action="store_true",
                   help="a small run (seconds): two small sizes, one seed, one pair")
    e.add_argument("--sizes", nargs="+", default=None,
                   help="dataset sizes in decisions (default 1k 10k 100k 1M)")
    e.add_argument("--seq-sizes", nargs="+", default=None,
                   help="sizes at which the sequential estimators run (default: all)")
    e.add_argument("--seeds", type=int, default=None, help="datasets per size (default 5)")
    e.add_argument("--pairs", nargs="+", default=None,
                   help="LOGGING:EVALUATION policy pairs (names of default_policies())")
    e.add_argument("--horizon-days", type=float, default=None, help="default 2")
    e.add_argument("--truth-users", type=int, default=None,
                   help="on-policy users per truth (default 200000)")
    e.add_argument("--n-bootstrap", type=int, default=None,
                   help="bootstrap replicates of every interval (default 200). FQE refits its "
                        "model once per replicate, the slowest part at large sizes (its time "
                        "grows in proportion; a progress bar with the time left shows it): "
                        "lower it for a quicker, rougher interval")
    e.add_argument("--seed", type=int, default=None, help="root seed (default 0)")
    e.add_argument("--fqe-diagnosis", action="store_true",
                   help="instead: FQE before and after its fixes (fqe_diagnosis.md) at the "
                   "sequential sizes")
    e.add_argument("--truth-csv", default=None,
                   help="with --fqe-diagnosis: reuse the truths of a run, its truth.csv "
                        "(default: simulate them)")
    e.add_argument("--quiet", action="store_true", help="no progress bars")


def add_subcommands(subparsers: Any) -> None:
    """Register ``ope-obd-check`` on the CLI's top-level sub-parsers.

    ``covercast ope-obd-check [--out reports/ope_obd]``: the Bernoulli-TS policy's CTR
    estimated from OBD's uniform-random log, against its on-policy CTR. ``covercast bench ope``
    (:func:`cmd_bench_ope`) and ``covercast experiment ope`` (:func:`add_experiment`) are wired
    by :mod:`covercast.experiments.cli`.
    """
    o = subparsers.add_parser("ope-obd-check", help="BTS's CTR from OBD's random log")
    o.set_defaults(func=cmd_obd_check)
    o.add_argument("--out", default="reports/ope_obd", help="report folder")
    o.add_argument("--campaign", default="all", choices=["all", "men", "women"],
                   help="OBD campaign")
    o.add_argument("--seed", type=int, default=0, help="master seed")
    o.add_argument("--quiet", action="store_true", help="no progress bars")
