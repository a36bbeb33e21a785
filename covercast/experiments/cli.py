"""The ``covercast`` command line.

Subcommands (``covercast COMMAND --help`` for each)::

    covercast demo                       the main job: simulate, fit, calibrate, report
    covercast params --out params.json   write the documented default population
    covercast populations list|show|stats|build   the population suite and its data cards
    covercast simulate-log --params params.json --days 7 --users 1000 --out log.parquet
    covercast fit LOG --out params.json  fit a population to an interaction log
    covercast calibrate --source obd --out reports/calibration
    covercast bench population           engine speed and memory
    covercast bench envs                 env steps/s beside CartPole and RecoGym
    covercast bench ope                  off-policy estimators on 1,000,000 decisions
    covercast bench generators           covers/s, parameters, time per epoch of each generator
    covercast bench all [--quick]        every benchmark, one report (runs/bench/report.md)
    covercast generators train|evaluate  train generators; the seed-000-style quality table
    covercast bank build --generator vae-iat --per-style 32 --out bank.npz
    covercast train --agent gru-ppo --env covercast/PushSchedule-v0 --steps N --out runs/NAME
    covercast evaluate runs/NAME         evaluate a trained or baseline agent
    covercast experiment ope             estimators scored against the simulator's truth
    covercast experiment scheduling      8 policies x seeds x populations, on Ray
    covercast experiment hpsearch        equal-budget hyperparameter search of the RL learners
    covercast experiment seeds           the seed papers' tables beside ours
    covercast experiment bank-open-rates generated vs procedural covers, same schedule
    covercast ope-obd-check              BTS's CTR estimated from OBD's random log

Heavy modules are imported inside each command, so ``covercast --help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def _policy(name: str, n_styles: int, push_prob: float, hours: Sequence[int], style: int):
    from covercast.simulators.policies import StaticSchedulePolicy, UniformRandomPolicy

    if name == "none":
        return None
    if name == "static":
        return StaticSchedulePolicy(hours=tuple(hours), style=style)
    if name == "random":
        return UniformRandomPolicy(push_prob=push_prob, n_styles=n_styles)
    raise ValueError(f"Unknown policy {name!r}; choose one of none, static, random.")


def _load_params(spec: str):
    from covercast.simulators.suite import load_population

    return load_population(spec)


def cmd_populations(args: argparse.Namespace) -> int:
    from covercast.simulators import suite

    if args.action == "list":
        print(f"{'name':<20} {'split':<7} purpose")
        for name, spec in suite.SUITE.items():
            print(f"{name:<20} {spec.split:<7} {spec.purpose}")
        print(f"aliases: {', '.join(f'{a} -> {n}' for a, n in suite.ALIASES.items())}")
        return 0
    if args.action == "build":
        names = [suite.resolve_name(n) for n in args.names] or None
        for path in suite.build_suite(args.out, names, progress=not args.quiet):
            print(f"wrote {path}")
        return 0
    if not args.names:
        raise ValueError(f"`covercast populations {args.action}` needs population names (see "
                         "`covercast populations list`).")
    for name in args.names:
        name = suite.resolve_name(name)
        card = suite.load_card(name)
        print(f"# {name} ({card['split']})\n\n{card['purpose']}\n\nsource: {card['source']}\n")
        measured = None
        if args.action == "stats":
            from covercast.simulators.landscape import population_statistics

            measured = population_statistics(suite.load_population(name), n_users=args.users,
                                             seed=args.seed)
        print(suite.card_table(name, measured))
        if measured is not None:
            print(f"\n(measured now: {args.users} users, seed {args.seed}; the card: "
                  f"{card['measured_with']['n_users']} users, seed "
                  f"{card['measured_with']['seed']})")
        print()
    return 0


def cmd_params(args: argparse.Namespace) -> int:
    from covercast.simulators.params import default_params

    path = default_params().save(args.out)
    print(f"wrote the default population to {path}")
    return 0


def cmd_simulate_log(args: argparse.Namespace) -> int:
    from covercast.simulators.logs import _log_format, write_log
    from covercast.simulators.population import simulate_log

    _log_format(Path(args.out))      # a bad --out suffix fails before the simulation runs
    params = _load_params(args.params)
    bank = None
    if args.bank:
        from covercast.covers.bank import CoverBank

        bank = CoverBank.load(args.bank)
    policy = _policy(args.policy, len(params.styles), args.push_prob, args.hours, args.style)
    log = simulate_log(params, policy, days=args.days, n_users=args.users, seed=args.seed,
                       bank=bank, slot_minutes=args.slot_minutes, progress=not args.quiet)
    path = write_log(log, args.out)
    counts = log["event"].value_counts()
    print(f"wrote {len(log):,} events ({', '.join(f'{k}: {v:,}' for k, v in counts.items())}) "
          f"to {path}")
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from covercast.simulators.fit import fit_population
    from covercast.simulators.logs import read_log

    log = read_log(args.log)
    bank = None
    if args.bank:
        from covercast.covers.bank import CoverBank

        bank = CoverBank.load(args.bank)
    params = fit_population(log, n_segments=args.segments, bank=bank, seed=args.seed,
                            progress=not args.quiet)
    path = params.save(args.out)
    print(f"fitted {len(params.segments)} segment(s) "
          f"({', '.join(f'{s.name}: {s.weight:.0%}' for s in params.segments)}) -> {path}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    if args.source != "obd":
        raise ValueError(f"Unknown calibration source {args.source!r}; the only one is 'obd'.")
    from covercast.simulators.calibrate import calibrate_obd

    metrics = calibrate_obd(args.out, policy=args.obd_policy, campaign=args.campaign,
                            seed=args.seed, progress=not args.quiet)
    print(f"calibration report written to {Path(args.out) / 'report.md'}")
    jsd = metrics["jsd"]
    print(f"  Jensen-Shannon divergence of hourly traffic, simulated vs real held-out day: "
          f"{jsd['sim_vs_real']:.4f} bits (flat profile: {jsd['flat_vs_real']:.4f}; real "
          f"training day vs the others: {jsd['train_day_vs_other_train_days']['mean']:.4f})")
    ctr = metrics["ctr"]["overall"]
    print(f"  held-out CTR: real {ctr['real']['ctr'][0]:.4%}, simulated "
          f"{ctr['sim']['ctr'][0]:.4%} (95 % predictive interval {ctr['sim']['pi_lo'][0]:.4%} "
          f"- {ctr['sim']['pi_hi'][0]:.4%})")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.what == "all":
        from covercast.experiments.bench_report import run_from_args

        return run_from_args(args)
    if args.what == "generators":
        from covercast.experiments.generators_cli import cmd_bench_generators

        return cmd_bench_generators(args)
    if args.what == "population":
        from covercast.experiments.bench import bench_population

        bench_population(ns=tuple(args.n), days=args.days, seed=args.seed)
        return 0
    if args.what == "envs":
        from covercast.experiments.bench_envs import bench_envs

        bench_envs(steps=20_000 if args.steps is None else args.steps, n_users=args.n_users, repeats=args.repeats, seed=args.seed,
                   progress=not args.quiet)
        return 0
    if args.what == "soak":
        from covercast.experiments.soak import DEFAULT_SOAK_STEPS, soak_from_bench_args

        return soak_from_bench_args(args, DEFAULT_SOAK_STEPS if args.steps is None
                                    else args.steps)
    if args.what == "ope":
        from covercast.experiments.bench_ope import bench_ope

        bench_ope(n=args.decisions, repeats=args.repeats, seed=args.seed, out=args.json,
                  progress=True, collect_decisions=args.decisions)
        return 0
    raise ValueError(f"Unknown benchmark {args.what!r}; available: population, envs, ope, "
                     "generators, all.")


def cmd_demo(args: argparse.Namespace) -> int:
    from covercast.experiments.demo import run_demo

    report = run_demo(args.out, episodes=args.episodes, horizon_days=args.horizon_days,
                      n_users=args.users, days=args.days, ppo_steps=args.ppo_steps,
                      seed=args.seed, fast=args.fast, progress=not args.quiet, bank=args.bank)
    print(f"report: {report}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from covercast import __version__

    p = argparse.ArgumentParser(prog="covercast", description=__doc__.split("\n\n")[0])
    p.add_argument("--version", action="version", version=f"covercast {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, func, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.set_defaults(func=func)
        sp.add_argument("--quiet", action="store_true", help="no progress bars")
        return sp

    sp = add("demo", cmd_demo, "compare scheduling policies on PushSchedule-v0, simulate the "
             "default population, fit it back, calibrate on the Open Bandit Dataset, and write "
             "a report")
    sp.add_argument("--out", default="runs/demo", help="output folder (default: runs/demo)")
    sp.add_argument("--episodes", type=int, default=300,
                    help="users (episodes) per policy in the comparison (default 300)")
    sp.add_argument("--horizon-days", type=int, default=14,
                    help="days per episode in the comparison (default 14)")
    sp.add_argument("--users", type=int, default=20_000,
                    help="users in the population section (default 20000)")
    sp.add_argument("--days", type=int, default=14,
                    help="days in the population section (default 14)")
    sp.add_argument("--ppo-steps", type=int, default=1_500_000,
                    help="GRU-PPO training env-steps (default 1,500,000; 0 skips it)")
    sp.add_argument("--seed", type=int, default=0, help="master seed")
    sp.add_argument("--fast", action="store_true", help="tiny sizes, for smoke tests")
    from covercast.generators.banks import BANK_HELP

    sp.add_argument("--bank", default="procedural", help=BANK_HELP)

    sp = add("params", cmd_params, "write the default population parameters as JSON")
    sp.add_argument("--out", required=True, help="output params JSON")

    sp = add("populations", cmd_populations, "the population suite: list it, show or "
             "re-measure a data card's statistics beside the published figures, rebuild it")
    sp.add_argument("action", choices=["list", "show", "stats", "build"],
                    help="list: names, splits, purposes; show: the data card; stats: measure "
                         "the card's statistics now; build: rebuild the JSON and cards")
    sp.add_argument("names", nargs="*", help="suite names or aliases (build: default all)")
    sp.add_argument("--users", type=int, default=2000,
                    help="stats: users simulated (default 2000)")
    sp.add_argument("--seed", type=int, default=1, help="stats: seed (default 1; cards use 0)")
    sp.add_argument("--out", default=None,
                    help="build: output folder (default: the package's data/populations)")

    sp = add("simulate-log", cmd_simulate_log, "simulate an interaction log")
    sp.add_argument("--params", default="default",
                    help="a suite population name (see `covercast populations list`; "
                         "default: 'default', i.e. calibrated-v1) or a params JSON")
    sp.add_argument("--days", type=int, default=7, help="simulated days")
    sp.add_argument("--users", type=int, default=1000, help="simulated users")
    sp.add_argument("--seed", type=int, default=0, help="master seed")
    sp.add_argument("--policy", default="random", choices=["none", "static", "random"],
                    help="logging policy (default: random, which logs useful propensities)")
    sp.add_argument("--push-prob", type=float, default=0.05,
                    help="per-slot push probability of the random policy")
    sp.add_argument("--hours", type=int, nargs="+", default=[8, 20],
                    help="push hours of the static policy")
    sp.add_argument("--style", type=int, default=0, help="style index of the static policy")
    sp.add_argument("--slot-minutes", type=int, default=60,
                    help="decision slot length in minutes (must divide 1440)")
    sp.add_argument("--bank", help="a cover bank .npz (default: the procedural bank)")
    sp.add_argument("--out", required=True, help="output .parquet or .csv")

    sp = add("fit", cmd_fit, "fit population parameters to a log")
    sp.add_argument("log", help="log file (.parquet, .csv, .csv.gz)")
    sp.add_argument("--out", required=True, help="output params JSON")
    sp.add_argument("--segments", type=int, default=None,
                    help="number of segments (default: chosen from the data)")
    sp.add_argument("--bank", help="cover bank the log's cover_id refers to "
                    "(default: the procedural bank)")
    sp.add_argument("--seed", type=int, default=0, help="master seed")

    sp = add("calibrate", cmd_calibrate, "compare the fitted simulator with real held-out data")
    sp.add_argument("--source", default="obd", choices=["obd"],
                    help="real data to calibrate against (the Open Bandit Dataset sample)")
    sp.add_argument("--obd-policy", default="random", choices=["random", "bts"],
                    help="OBD logging policy whose log is used")
    sp.add_argument("--campaign", default="all", choices=["all", "men", "women"],
                    help="OBD campaign")
    sp.add_argument("--seed", type=int, default=0, help="master seed")
    sp.add_argument("--out", default="reports/calibration", help="report folder")

    sp = add("bench", cmd_bench, "speed benchmarks (figures and ratios, not tests)")
    sp.add_argument("what", choices=["population", "envs", "ope", "generators", "soak", "all"],
                    help="which benchmark (soak: every env for millions of random steps: "
                         "NaN/inf, memory growth, determinism)")
    sp.add_argument("--n", type=int, nargs="+", default=[1, 1000, 100_000],
                    help="population: population sizes")
    sp.add_argument("--days", type=int, default=None,
                    help="population: simulated days per size (default: scaled to the size)")
    sp.add_argument("--steps", type=int, default=None,
                    help="envs: steps per timed run of each single-user env (default 20,000); "
                         "soak: env-steps in all (default 10,000,000)")
    sp.add_argument("--n-users", type=int, default=10_000,
                    help="envs, soak: users of the population vector env")
    sp.add_argument("--repeats", type=int, default=3, help="envs, ope: timed runs per entry")
    sp.add_argument("--decisions", type=int, default=1_000_000,
                    help="ope: logged decisions (default 1,000,000)")
    sp.add_argument("--json", default=None, help="ope: also write the figures to this JSON file")
    sp.add_argument("--seed", type=int, default=0, help="master seed")
    from covercast.experiments.generators_cli import add_bench_generators_arguments
    from covercast.experiments.generators_cli import add_subcommands as add_generator_commands

    add_bench_generators_arguments(sp, exclude=("--seed", "--repeats"))
    from covercast.experiments.bench_report import add_arguments as add_bench_all_arguments

    add_bench_all_arguments(sp, with_out=False)           # --out: the generators' option
    out_option = next(a for a in sp._actions if a.dest == "out")
    out_option.help += "; soak: the report's folder (default runs/soak)"
    add_generator_commands(sub)

    sp = sub.add_parser("experiment", help="experiments that write reports (ope, scheduling, "
                        "hpsearch, seeds)",
                        description="Experiments that write reports.")
    experiments = sp.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    from covercast.experiments.ope_experiment import add_experiment
    from covercast.experiments.ope_experiment import add_subcommands as add_ope_commands

    add_experiment(experiments)
    from covercast.experiments.bank_open_rates import add_experiment as add_bank_open_rates
    from covercast.experiments.hpsearch import add_experiment as add_hpsearch
    from covercast.experiments.scheduling import add_experiment as add_scheduling
    from covercast.experiments.seeds import add_experiment as add_seeds

    add_scheduling(experiments)
    add_hpsearch(experiments)
    add_seeds(experiments)
    add_bank_open_rates(experiments)
    add_ope_commands(sub)

    from covercast.experiments.agents_cli import add_subcommands as add_rl_subcommands

    add_rl_subcommands(sub)
    for each in _each_parser(p):  # defaults in every help; errors translated to its flags
        each.formatter_class = HelpFormatter
        each.set_defaults(_cli_parser=each)
    return p


class HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the text already says it.

    ``None`` and ``False`` defaults are not printed (they mean "not given"); an option whose
    default is ``None`` says in its own help what happens without it.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if (not action.option_strings or action.default is None or action.default is False
                or action.default is argparse.SUPPRESS or "default" in text.lower()):
            return text
        return f"{text} (default: %(default)s)"


def _each_parser(parser: argparse.ArgumentParser):
    """``parser`` and every subcommand parser under it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):  # aliases share a parser
                yield from _each_parser(sub)


#: Library parameter names whose CLI flag is spelled differently (``n_users`` -> ``--users``).
_FLAG_ALIASES: dict[str, tuple[str, ...]] = {
    "n_users": ("users", "n_users"), "total_steps": ("steps",), "ns": ("n",),
    "n_segments": ("segments",), "n_episodes": ("episodes",), "n_decisions": ("decisions",),
    "n_trials": ("trials",),
}


def cli_message(message: str, parser: argparse.ArgumentParser) -> str:
    """Rewrite the library's `` `param` `` names in ``message`` as ``parser``'s CLI flags.

    Library errors name Python parameters (`` `n_users` must be in [1, ...]``); on the command
    line the user typed ``--users``, so that is what the error should say. Names with no flag
    in this subcommand are left as they are.
    """
    import re

    flags = {a.dest: max(a.option_strings, key=len) for a in parser._actions
             if a.option_strings and a.dest not in ("help", "version")}

    def flag(match: re.Match) -> str:
        name, index = match.group(1), match.group(2) or ""
        for dest in (name, *_FLAG_ALIASES.get(name, ())):
            if dest in flags:
                return f"`{flags[dest]}`" + (" (each value)" if index else "")
        return match.group(0)

    # `name`, `name[*]` / `name[3]` (one element) and `name entries` (each element)
    return re.sub(r"`([A-Za-z_][A-Za-z0-9_]*)(\[[^\]`]*\]| entries)?`", flag, message)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, ImportError) as e:
        print(f"covercast {args.command}: error: {cli_message(str(e), args._cli_parser)}",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
