"""Speed and memory benchmarks (figures, not tests).

:func:`bench_population` measures the full population engine -- organic sessions, a static
schedule of two pushes a day to every user, responses, fatigue, opt-outs, rolling observation
windows, taste drift -- in **user-steps per second** (users x hourly slots simulated per second
of wall-clock time) and its memory (the ``tracemalloc`` peak of a run, which counts numpy's
arrays, and the process's resident set size). ``covercast bench population`` and
``benchmarks/bench_population.py`` run it and print the table.
"""

from __future__ import annotations

import gc
import os
import resource
import time
import tracemalloc
from collections.abc import Sequence

import pandas as pd

from covercast._io import atomic_write_csv
from covercast.simulators.params import PopulationParams, default_params
from covercast.simulators.policies import StaticSchedulePolicy
from covercast.simulators.population import Population

__all__ = ["bench_population", "default_bench_days", "format_table"]

#: Target throughput of the engine at N = 100,000 on a 2-core machine.
TARGET_USER_STEPS_PER_S = 5_000_000


def default_bench_days(n_users: int) -> int:
    """Simulated days for a population of ``n_users``: enough slots for a stable timing while
    the largest sizes still run in seconds (28 days below 1,000 users, 14 below 10,000, else 7)."""
    if n_users < 1000:
        return 28
    if n_users < 10_000:
        return 14
    return 7


def _proc_status_mib(field: str) -> float:
    """A memory field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``, ...) in MiB (NaN where
    /proc is unavailable)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


def _rss_mib() -> float:
    """Current resident set size of this process in MiB (NaN where /proc is unavailable)."""
    return _proc_status_mib("VmRSS")


def _peak_rss_mib() -> float:
    """High-water mark of the resident set size of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / 1024.0 if os.uname().sysname != "Darwin" else peak / 2**20


def _one_run(params: PopulationParams, bank, n: int, days: int, seed: int,
             trace: bool) -> tuple[float, float, float]:
    """Build and run one population; return (setup seconds, run seconds, tracemalloc peak)."""
    policy = StaticSchedulePolicy(hours=(8, 20), n_styles=len(params.styles))
    gc.collect()
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    pop = Population(params, n, bank=bank, seed=seed, record_events=False)
    t1 = time.perf_counter()
    pop.run(policy, days)
    t2 = time.perf_counter()
    peak = float("nan")
    if trace:
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    del pop
    return t1 - t0, t2 - t1, peak


def bench_population(ns: Sequence[int] = (1, 1000, 100_000), days: int | None = None,
                     seed: int = 0, *, repeats: int = 3, params: PopulationParams | None = None,
                     verbose: bool = True, out: str | os.PathLike | None = None
                     ) -> pd.DataFrame:
    """Measure the engine's throughput and memory for each population size.

    For each ``n`` in ``ns``: ``repeats`` timed runs of ``days`` simulated days with hourly
    slots under :class:`~covercast.simulators.policies.StaticSchedulePolicy` ``((8, 20))``
    (``record_events=False``), then one run under ``tracemalloc`` for memory. Populations are
    built outside the timed part (reported as ``setup_s``).

    Parameters
    ----------
    ns : sequence of int
        Population sizes.
    days : int, optional
        Simulated days per run; default :func:`default_bench_days` of each size.
    seed : int
        Seed of every population (the same users and draws in every repeat).
    repeats : int
        Timed runs per size; the best and the median are reported (other processes share the
        machine, so the best is the engine's speed and the median what to expect).
    params : PopulationParams, optional
        The population (default: :func:`~covercast.simulators.params.default_params`).
    verbose : bool
        Print the table.
    out : path, optional
        Also write the table as CSV (atomically).

    Returns
    -------
    pandas.DataFrame
        One row per size: ``n_users``, ``days``, ``slots``, ``setup_s``, ``best_s``,
        ``median_s``, ``user_steps_per_s`` (best), ``median_user_steps_per_s``,
        ``tracemalloc_peak_mib``, ``rss_mib`` (after the runs), ``peak_rss_mib`` (process
        high-water mark so far).
    """
    ns = list(ns)
    if not ns or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in ns):
        raise ValueError(f"`ns` must be a non-empty list of positive integers, got {ns!r}.")
    if days is not None and (isinstance(days, bool) or not isinstance(days, int) or days < 1):
        raise ValueError(f"`days` must be a positive integer or None, got {days!r}.")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"`repeats` must be a positive integer, got {repeats!r}.")
    params = default_params() if params is None else params
    from covercast.covers.procedural import default_bank

    bank = default_bank()
    rows = []
    for n in ns:
        d = default_bench_days(n) if days is None else days
        slots = d * 24
        setups, runs = [], []
        for _ in range(repeats):
            s, r, _ = _one_run(params, bank, n, d, seed, trace=False)
            setups.append(s)
            runs.append(r)
        _, _, peak = _one_run(params, bank, n, d, seed, trace=True)
        runs_s = pd.Series(runs)
        rows.append({
            "n_users": n, "days": d, "slots": slots,
            "setup_s": float(pd.Series(setups).median()),
            "best_s": float(runs_s.min()), "median_s": float(runs_s.median()),
            "user_steps_per_s": n * slots / float(runs_s.min()),
            "median_user_steps_per_s": n * slots / float(runs_s.median()),
            "tracemalloc_peak_mib": peak, "rss_mib": _rss_mib(), "peak_rss_mib": _peak_rss_mib(),
        })
    df = pd.DataFrame(rows)
    if verbose:
        print(format_table(df))
    if out is not None:
        atomic_write_csv(df, out)
    return df


def format_table(df: pd.DataFrame) -> str:
    """The benchmark table as fixed-width text."""
    lines = [f"{'users':>9} {'days':>5} {'setup s':>8} {'run s':>8} {'user-steps/s':>14} "
             f"{'(median)':>12} {'tracemalloc MiB':>16} {'RSS MiB':>8}"]
    for r in df.itertuples():
        lines.append(f"{r.n_users:>9,} {r.days:>5} {r.setup_s:>8.3f} {r.best_s:>8.3f} "
                     f"{r.user_steps_per_s:>14,.0f} {r.median_user_steps_per_s:>12,.0f} "
                     f"{r.tracemalloc_peak_mib:>16.1f} {r.rss_mib:>8.0f}")
    lines.append(f"target: >= {TARGET_USER_STEPS_PER_S:,} user-steps/s at 100,000 users, "
                 "under 2 GiB")
    return "\n".join(lines)
