"""Every benchmark in one run, one report: ``covercast bench all [--quick]`` (``make bench``).

:func:`bench_all` runs, one after the other in one process (so ratios are measured side by side
on the same machine state):

* ``population``: the engine (:func:`covercast.experiments.bench.bench_population`);
* ``envs``: every env beside CartPole and RecoGym's random agent
  (:func:`covercast.experiments.bench_envs.bench_envs`);
* ``vector``: the vector env's engine / env-layer split and the scaling curve over 1 to
  1,000,000 users (:mod:`covercast.experiments.bench_vector`);
* ``ope``: the off-policy estimators (:func:`covercast.experiments.bench_ope.bench_ope`);
* ``generators``: covers/s of every cover generator
  (:func:`covercast.experiments.bench_generators.bench_generators`);
* ``rl``: GRU-PPO against sb3-contrib's RecurrentPPO in env-steps/s
  (:func:`covercast.experiments.bench_rl.bench_throughput`);

and writes ``report.md`` (figures, ratios, each target and whether it holds, the machine),
``results.csv`` (one row per figure) and ``scaling.png`` to ``out`` (default ``runs/bench``).
A benchmark whose optional dependencies are missing is reported as skipped, with the reason.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
import os
import platform
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from covercast._io import atomic_write_csv, atomic_write_text, md_table

__all__ = ["BenchPlan", "FULL", "QUICK", "SECTIONS", "bench_all", "machine_info",
           "machine_lines", "write_report", "main"]

#: The benchmarks of a ``bench all`` run, in the order they run.
SECTIONS: tuple[str, ...] = ("population", "envs", "vector", "ope", "generators", "rl")


@dataclass(frozen=True)
class BenchPlan:
    """The sizes of every benchmark of one :func:`bench_all` run."""

    population_ns: tuple[int, ...] = (1, 1000, 100_000)
    """Population sizes of the engine benchmark."""
    population_days: int | None = None
    """Simulated days per engine run (None: scaled to the size)."""
    population_repeats: int = 3
    """Timed engine runs per size."""
    env_steps: int = 20_000
    """Steps per timed run of each single-user env and of CartPole."""
    recogym_steps: int = 10_000
    """Steps per timed run of RecoGym's random agent."""
    vector_users: int = 10_000
    """Users of the vector env in ``bench envs``."""
    vector_steps: int = 100
    """Slots per timed run of the vector env in ``bench envs``."""
    env_repeats: int = 3
    """Timed runs of every env (median reported; >= 3 leaves RecoGym's compilation out)."""
    split_ns: tuple[int, ...] = (10_000, 100_000)
    """Users of the engine / env-layer split."""
    split_steps: int | None = None
    """Timed steps of the split (None: 48 below 50,000 users, else 24)."""
    split_repeats: int = 3
    """Runs of the split per size and workload (the fastest is reported)."""
    scaling_ns: tuple[int, ...] = (1, 100, 10_000, 100_000, 1_000_000)
    """Users of the scaling curve."""
    scaling_steps: int | None = None
    """Timed steps per scaling point (None: 240 down to 5 as the size grows)."""
    ope_n: int = 1_000_000
    """Logged decisions of the OPE benchmark."""
    ope_repeats: int = 3
    """Timed runs per CI method."""
    ope_fqe: bool = True
    """Also time FQE's fit and refit-bootstrap interval (minutes)."""
    generator_runs: tuple[tuple[tuple[str, ...], tuple[int, ...], int | None], ...] = (
        (("procedural", "vae-iat", "dcgan", "diffusion"), (1, 256), None),)
    """Calls of the generator benchmark: (generators, batch sizes, covers per timing or None
    for its defaults)."""
    generator_repeats: int = 3
    """Timings per figure (best kept)."""
    rl_steps: int = 100_000
    """Env-steps each learner trains for (``--quick``: 20,000, the issue's measure)."""
    rl_num_envs: int = 64
    """Users (envs) of the RL benchmark."""
    rl_repeats: int = 1
    """Runs of the learners in turn (medians)."""


#: ``covercast bench all``: every figure at the sizes the targets are set at.
FULL = BenchPlan()
#: ``covercast bench all --quick``: the same benchmarks, smaller, in under 5 minutes on 2 cores.
QUICK = BenchPlan(population_ns=(1000, 100_000), population_days=2, population_repeats=2,
                  env_steps=3000, recogym_steps=3000, vector_steps=48, env_repeats=3,
                  split_repeats=1, scaling_steps=None, ope_n=1_000_000, ope_repeats=1,
                  ope_fqe=False,
                  generator_runs=((("procedural", "vae-iat", "dcgan"), (1, 256), None),
                                  (("diffusion",), (1, 4), 4)),
                  generator_repeats=1, rl_steps=20_000)


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas() -> str:
    """numpy's BLAS/LAPACK as numpy's build configuration names it."""
    import numpy as np

    try:
        cfg = np.show_config(mode="dicts")["Build Dependencies"]
        blas = cfg.get("blas", {})
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception as exc:  # numpy < 1.25 has no mode="dicts"
        return f"unknown ({type(exc).__name__})"


def machine_info() -> dict[str, Any]:
    """The machine a benchmark ran on: CPU model, cores (logical, usable by this process),
    load average, thread settings, Python, numpy and its BLAS, and torch with its threads
    (when torch is installed)."""
    import numpy as np

    info: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "load_average_1_5_15": (tuple(round(x, 2) for x in os.getloadavg())
                                if hasattr(os, "getloadavg") else None),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": np.__version__,
        "blas": _blas(),
    }
    if importlib.util.find_spec("torch") is not None:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    else:
        info["torch"] = "not installed"
    return info


def machine_lines(info: dict[str, Any]) -> list[str]:
    """The machine as Markdown bullet lines."""
    load = info.get("load_average_1_5_15")
    torch = info.get("torch", "not installed")
    torch_s = torch if "torch_threads" not in info else \
        f"{torch} ({info['torch_threads']} intra-op threads)"
    return [f"- CPU: {info['cpu_model']}; {info['logical_cores']} logical cores, "
            f"{info['usable_cores']} usable by this process",
            f"- load average (1/5/15 min) at the start: "
            f"{' / '.join(map(str, load)) if load else 'n/a'} (other processes share the "
            "machine: compare figures of one run)",
            f"- threads: OMP_NUM_THREADS={info['OMP_NUM_THREADS']}; torch {torch_s}",
            f"- Python {info['python']} on {info['platform']}; numpy {info['numpy']} "
            f"(BLAS: {info['blas']})"]


# ============================================================================ sections
@dataclass
class Section:
    """One benchmark's part of the report."""

    name: str
    title: str
    status: str = "ok"
    """``ok``, ``skipped`` (an optional dependency is missing) or ``failed``."""
    reason: str = ""
    seconds: float = math.nan
    table: str = ""
    """Markdown (tables and notes)."""
    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """Figures: ``item``, ``metric``, ``value``, ``unit``, ``target``, ``holds``, ``note``."""
    frames: dict[str, pd.DataFrame] = dataclasses.field(default_factory=dict)


def _row(item: str, metric: str, value: float, unit: str, target: float = math.nan,
         higher_is_better: bool = True, note: str = "") -> dict[str, Any]:
    holds: bool | None = None
    if not math.isnan(target) and not math.isnan(value):
        holds = bool(value >= target) if higher_is_better else bool(value <= target)
    return {"item": item, "metric": metric, "value": float(value), "unit": unit,
            "target": float(target), "target_is": ">=" if higher_is_better else "<=",
            "holds": holds, "note": note}


def _md_table(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A DataFrame as a Markdown table (numbers formatted, NaN as n/a)."""
    def cell(x: Any) -> str:
        if isinstance(x, float):
            if math.isnan(x):
                return "n/a"
            return format(x, ",.0f") if abs(x) >= 1000 else format(x, floatfmt)
        return format(x, ",") if isinstance(x, int) and abs(x) >= 10_000 else str(x)

    return "\n".join(md_table([str(c) for c in df.columns], df.itertuples(index=False),
                              fmt=cell))


def _missing(*modules: str) -> str:
    """The first of ``modules`` that cannot be imported ('' if all can)."""
    for m in modules:
        if importlib.util.find_spec(m) is None:
            return m
    return ""


def _run_population(plan: BenchPlan, sec: Section, out: Path) -> None:
    from covercast.experiments.bench import TARGET_USER_STEPS_PER_S, bench_population

    df = bench_population(ns=plan.population_ns, days=plan.population_days,
                          repeats=plan.population_repeats, verbose=False)
    sec.frames["population"] = df
    sec.table = _md_table(df[["n_users", "days", "setup_s", "best_s", "user_steps_per_s",
                              "median_user_steps_per_s", "tracemalloc_peak_mib", "rss_mib"]])
    for r in df.itertuples():
        target = TARGET_USER_STEPS_PER_S if r.n_users == 100_000 else math.nan
        sec.rows.append(_row(f"engine N={r.n_users:,}", "user-steps/s (best)",
                             r.user_steps_per_s, "user-steps/s", target,
                             note="static schedule (8, 20), hourly slots"))
        sec.rows.append(_row(f"engine N={r.n_users:,}", "tracemalloc peak", r.tracemalloc_peak_mib,
                             "MiB", 2048.0 if r.n_users == 100_000 else math.nan,
                             higher_is_better=False))


def _run_envs(plan: BenchPlan, sec: Section, out: Path) -> None:
    from covercast.experiments.bench_envs import bench_envs, format_env_table, import_recogym

    df = bench_envs(steps=plan.env_steps, n_users=plan.vector_users,
                    vector_steps=plan.vector_steps, recogym_steps=plan.recogym_steps,
                    repeats=plan.env_repeats, verbose=False)
    sec.frames["envs"] = df
    sec.table = "```\n" + format_env_table(df) + "\n```"
    if import_recogym() is None:
        sec.reason = ("RecoGym is not installed (`make bench` installs it): the x RecoGym "
                      "ratios are missing")
    for r in df.itertuples():
        sec.rows.append(_row(r.env, f"{r.unit} (median)", r.median, r.unit,
                             r.target if isinstance(r.target, float) else math.nan))
        if r.kind == "single":
            sec.rows.append(_row(r.env, "x RecoGym random agent (medians, same run)",
                                 r.vs_recogym, "ratio", 10.0))
            sec.rows.append(_row(r.env, "x CartPole-v1 (medians, same run)", r.vs_cartpole,
                                 "ratio"))


def _run_vector(plan: BenchPlan, sec: Section, out: Path) -> None:
    from covercast.experiments import bench_vector as bv

    split = bv.vector_split(plan.split_ns, steps=plan.split_steps, repeats=plan.split_repeats,
                            verbose=False)
    scale = bv.scaling(plan.scaling_ns, steps=plan.scaling_steps, verbose=False)
    sec.frames["vector_split"] = split
    sec.frames["scaling"] = scale
    bv.plot_scaling(scale, out / "scaling.png")
    sec.table = ("Engine vs env layer inside `PopulationVectorEnv.step` (best of "
                 f"{plan.split_repeats}; workloads: `random` = uniform random actions, 5 in 6 "
                 "users pushed every slot; `schedule` = everybody pushed at 08:00 and 20:00):"
                 "\n\n" + bv.format_split(split) + "\n\nScaling (random actions; each size "
                 "in a fresh process, peak RSS of that process):\n\n" +
                 bv.format_scaling(scale) + "\n\n![scaling](scaling.png)")
    for r in split.itertuples():
        item = f"vector env N={r.n_users:,}, {r.workload} actions"
        sec.rows.append(_row(item, "user-steps/s (split run)", r.user_steps_per_s,
                             "user-steps/s", 10_000_000.0 if r.n_users == 10_000 else math.nan))
        sec.rows.append(_row(item, "env layer / engine time", r.env_over_engine, "ratio", 1.0,
                             higher_is_better=False))
    for r in scale.itertuples():
        item = f"scaling {r.target} N={r.n_users:,}"
        sec.rows.append(_row(item, "user-steps/s", r.user_steps_per_s, "user-steps/s"))
        sec.rows.append(_row(item, "peak RSS", r.peak_rss_mib, "MiB"))


def _run_ope(plan: BenchPlan, sec: Section, out: Path) -> None:
    from covercast.experiments.bench_ope import bench_ope

    res = bench_ope(n=plan.ope_n, repeats=plan.ope_repeats, fqe=plan.ope_fqe, progress=False)
    lines = [f"Six per-decision estimators (DM, IPS, SNIPS, DR, SNDR, Switch-DR) with 95 % "
             f"intervals on {res['n']:,} synthetic decisions (median of {res['repeats']}):", "",
             "| CI method | seconds | target |", "|---|---:|---:|"]
    for ci, secs in res["seconds"].items():
        lines.append(f"| {ci} | {secs:.2f} | < 10 s at 1,000,000 |")
        target = 10.0 if res["n"] >= 1_000_000 else math.nan
        sec.rows.append(_row(f"6 estimators + {ci} CI, {res['n']:,} decisions", "seconds",
                             secs, "s", target, higher_is_better=False))
    if "fqe" in res:
        f = res["fqe"]
        lines += ["", f"FQE on {f['decisions']:,} decisions: fit {f['fit_s']:.1f} s, estimate "
                  f"with the refit bootstrap ({f['n_bootstrap']} replicates) {f['ci_s']:.1f} s."]
        sec.rows.append(_row(f"FQE fit, {f['decisions']:,} decisions", "seconds", f["fit_s"],
                             "s"))
        sec.rows.append(_row(f"FQE refit-bootstrap CI, {f['decisions']:,} decisions",
                             "seconds", f["ci_s"], "s"))
    sec.table = "\n".join(lines)


def _run_generators(plan: BenchPlan, sec: Section, out: Path) -> None:
    from covercast.experiments.bench_generators import bench_generators

    frames = [bench_generators(["cpu"], generators=list(gens), batch_sizes=tuple(batches),
                               covers=covers, repeats=plan.generator_repeats, progress=False)
              for gens, batches, covers in plan.generator_runs]
    df = pd.concat(frames, ignore_index=True)
    sec.frames["generators"] = df
    sec.table = _md_table(df[["generator", "config", "batch_size", "covers", "covers_per_s",
                              "target_covers_per_s", "parameters", "train_step_ms",
                              "threads"]])
    for r in df.itertuples():
        t = r.target_covers_per_s
        sec.rows.append(_row(f"{r.generator} [{r.config}], batch {r.batch_size}", "covers/s",
                             r.covers_per_s, "covers/s",
                             float(t) if t is not None and not pd.isna(t) else math.nan))


def _run_rl(plan: BenchPlan, sec: Section, out: Path) -> None:
    import torch

    from covercast.experiments.bench_rl import bench_throughput

    threads = torch.get_num_threads()
    try:
        df = bench_throughput(plan.rl_num_envs, plan.rl_steps, repeats=plan.rl_repeats)
    finally:
        torch.set_num_threads(threads)
    # the learning loop alone (rollouts + updates): what grows with the steps; the rest of a
    # train() call is fixed (construction; GRU-PPO's greedy push-threshold calibration)
    df["loop_env_steps_per_s"] = df["env_steps"] / (df["rollout_s"] + df["update_s"])
    ref = df.loc[df["agent"] == "gru-ppo", "loop_env_steps_per_s"]
    df["gru_ppo_loop_speedup"] = (float(ref.iloc[0]) / df["loop_env_steps_per_s"]
                                  if len(ref) else math.nan)
    sec.frames["rl"] = df
    sec.table = _md_table(df[["agent", "num_envs", "env_steps", "seconds", "rollout_s",
                              "update_s", "other_s", "env_steps_per_s", "gru_ppo_speedup",
                              "loop_env_steps_per_s", "gru_ppo_loop_speedup"]]) + (
        "\n\n`env_steps_per_s`: the whole `train()` call; `loop_env_steps_per_s`: rollouts "
        "and updates only (`other_s` is the rest: building the learner, and for GRU-PPO the "
        "greedy push-threshold calibration after training, a fixed cost that weighs more the "
        "fewer steps are trained). The target is judged on the whole call.")
    for r in df.itertuples():
        sec.rows.append(_row(r.agent, "env-steps/s (training, whole call)", r.env_steps_per_s,
                             "env-steps/s"))
        sec.rows.append(_row(r.agent, "env-steps/s (rollouts + updates)",
                             r.loop_env_steps_per_s, "env-steps/s"))
        if r.agent != "gru-ppo":
            sec.rows.append(_row(f"GRU-PPO vs {r.agent}", "env-steps/s ratio (same run)",
                                 r.gru_ppo_speedup, "ratio", 10.0))
            sec.rows.append(_row(f"GRU-PPO vs {r.agent} (rollouts + updates)",
                                 "env-steps/s ratio (same run)", r.gru_ppo_loop_speedup,
                                 "ratio"))


_RUNNERS: dict[str, tuple[str, tuple[str, ...], Callable[[BenchPlan, Section, Path], None]]] = {
    "population": ("Population engine (`covercast bench population`)", (), _run_population),
    "envs": ("Environments beside CartPole and RecoGym (`covercast bench envs`)", (),
             _run_envs),
    "vector": ("Vector env: engine vs env layer, and scaling "
               "(`python -m covercast.experiments.bench_vector`)", (), _run_vector),
    "ope": ("Off-policy estimators (`covercast bench ope`)", (), _run_ope),
    "generators": ("Cover generators on the CPU (`covercast bench generators`)",
                   ("torch", "diffusers"), _run_generators),
    "rl": ("Learners: GRU-PPO vs RecurrentPPO (`python -m covercast.experiments.bench_rl`)",
           ("torch", "sb3_contrib", "stable_baselines3"), _run_rl),
}


def bench_all(plan: BenchPlan | str = "full", *, sections: Sequence[str] = SECTIONS,
              out: str | os.PathLike = "runs/bench", command: str | None = None,
              progress: bool = True) -> pd.DataFrame:
    """Run the benchmarks of ``sections`` one after the other and write the report.

    Parameters
    ----------
    plan : BenchPlan or str
        The sizes: ``"full"`` (:data:`FULL`), ``"quick"`` (:data:`QUICK`) or a
        :class:`BenchPlan`.
    sections : sequence of str
        Which benchmarks (:data:`SECTIONS`), run in that order.
    out : path
        Folder of ``report.md``, ``results.csv``, ``scaling.png`` and one CSV per table.
    command : str, optional
        The command line written in the report (default: this process's).
    progress : bool
        Print a line as each benchmark starts and ends.

    Returns
    -------
    pandas.DataFrame
        ``results.csv``: one row per figure (``section``, ``item``, ``metric``, ``value``,
        ``unit``, ``target``, ``target_is``, ``holds``, ``note``).
    """
    if isinstance(plan, str):
        if plan not in ("full", "quick"):
            raise ValueError(f"`plan` must be 'full', 'quick' or a BenchPlan, got {plan!r}.")
        plan_name, plan = plan, (FULL if plan == "full" else QUICK)
    elif isinstance(plan, BenchPlan):
        plan_name = "quick" if plan == QUICK else ("full" if plan == FULL else "custom")
    else:
        raise ValueError(f"`plan` must be 'full', 'quick' or a BenchPlan, got {plan!r}.")
    bad = [s for s in sections if s not in _RUNNERS]
    if bad or not sections:
        raise ValueError(f"`sections` must be a non-empty subset of {SECTIONS}, got "
                         f"{list(sections)!r}.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    t_start = time.time()
    done: list[Section] = []
    for name in sections:
        title, needs, runner = _RUNNERS[name]
        sec = Section(name, title)
        missing = _missing(*needs)
        if missing:
            sec.status = "skipped"
            sec.reason = (f"`{missing}` is not installed (`make bench` installs every "
                          "benchmark's dependencies)")
        else:
            if progress:
                print(f"[bench all] {name} ...", flush=True)
            t0 = time.perf_counter()
            try:
                runner(plan, sec, out)
            except Exception as exc:                  # the report says what failed and why
                sec.status = "failed"
                sec.reason = f"{type(exc).__name__}: {exc}"
                sec.table = "```\n" + traceback.format_exc()[-3000:] + "\n```"
            sec.seconds = time.perf_counter() - t0
            for key, df in sec.frames.items():
                atomic_write_csv(df, out / f"{key}.csv")
        if progress:
            extra = f" ({sec.reason})" if sec.reason else ""
            print(f"[bench all] {name}: {sec.status}, {sec.seconds:.0f} s{extra}", flush=True)
        done.append(sec)
    info["load_average_end"] = (tuple(round(x, 2) for x in os.getloadavg())
                                if hasattr(os, "getloadavg") else None)
    info["wall_s"] = time.time() - t_start
    cmd = command or " ".join(["covercast bench all"] + (["--quick"] if plan_name == "quick"
                                                          else []))
    results = write_report(done, info, out, command=cmd, plan_name=plan_name,
                           started=time.strftime("%Y-%m-%d %H:%M %Z",
                                                 time.localtime(t_start)))
    if progress:
        print(f"[bench all] wrote {out / 'report.md'} and {out / 'results.csv'}")
    return results


def _targets(sections: list[Section]) -> list[dict[str, Any]]:
    """The issue's targets with the figures that decide them (None where not measured)."""
    rows = {s.name: pd.DataFrame(s.rows) for s in sections if s.rows}

    def pick(section: str, item_has: str, metric_has: str) -> pd.DataFrame:
        df = rows.get(section)
        if df is None:
            return pd.DataFrame()
        return df[df["item"].str.contains(item_has, regex=False)
                  & df["metric"].str.contains(metric_has, regex=False)]

    def verdict(df: pd.DataFrame) -> bool | None:
        h = [x for x in df["holds"] if x is not None] if len(df) else []
        return None if not h else all(h)

    def figures(df: pd.DataFrame, fmt: str) -> str:
        return "; ".join(f"{r.item}: {format(r.value, fmt)}" for r in df.itertuples()) or \
            "not measured"

    out = []
    v10 = pick("envs", "PopulationVectorEnv (N=10,000)", "median")
    out.append(("Vector env >= 10 M user-steps/s at N = 10,000 (random actions, `bench envs`)",
                figures(v10, ",.0f"), verdict(v10)))
    vs = pick("vector", "vector env N=10,000", "user-steps/s")
    out.append(("Vector env >= 10 M user-steps/s at N = 10,000 (split run, both workloads)",
                figures(vs, ",.0f"), verdict(vs)))
    lay = pick("vector", "vector env", "env layer / engine")
    out.append(("Env layer costs at most as much as the engine (env layer / engine <= 1)",
                figures(lay, ".2f"), verdict(lay)))
    reco = pick("envs", "covercast/", "x RecoGym")
    reco = reco[reco["value"].notna()] if len(reco) else reco
    out.append(("Every single-user env >= 10x RecoGym's random agent (medians, same run)",
                figures(reco, ".1f"), verdict(reco)))
    rl = pick("rl", "GRU-PPO vs recurrent-ppo", "ratio")
    rl_call = rl[~rl["item"].str.contains("rollouts", regex=False)] if len(rl) else rl
    out.append(("GRU-PPO >= 10x RecurrentPPO env-steps/s (same run; judged on the whole "
                "train() call)", figures(rl, ".1f"), verdict(rl_call)))
    v3 = v10.copy()
    if len(v3):
        v3["holds"] = v3["value"] >= 3_000_000
    out.append(("Issue 17: vector env >= 3 M user-steps/s at N = 10,000 (`bench envs`)",
                figures(v3, ",.0f"), verdict(v3)))
    pop = pick("population", "N=100,000", "user-steps/s")
    out.append(("Issue 17: engine (`bench population`) >= 5 M user-steps/s at N = 100,000",
                figures(pop, ",.0f"), verdict(pop)))
    ope = pick("ope", "6 estimators", "seconds")
    out.append(("Issue 6: six estimators with CIs on 1,000,000 decisions in < 10 s",
                figures(ope, ".2f") + " s" if len(ope) else "not measured", verdict(ope)))
    gen = pick("generators", "", "covers/s")
    gen = gen[gen["target"].notna()] if len(gen) else gen
    out.append(("Generators: VAE-IAT >= 1,000 covers/s, diffusion (20 DDIM) >= 10 covers/s "
                "(CPU, 32x32, batch > 1)", figures(gen, ",.1f"), verdict(gen)))
    return [{"target": t, "figures": f, "holds": h} for t, f, h in out]


def write_report(sections: list[Section], info: dict[str, Any], out: str | os.PathLike, *,
                 command: str, plan_name: str, started: str) -> pd.DataFrame:
    """Write ``report.md`` and ``results.csv`` of a :func:`bench_all` run; return the
    results."""
    out = Path(out)
    results = pd.DataFrame([{"section": s.name, **r} for s in sections for r in s.rows],
                           columns=["section", "item", "metric", "value", "unit", "target",
                                    "target_is", "holds", "note"])
    atomic_write_csv(results, out / "results.csv")
    word = {True: "**holds**", False: "**does not hold**", None: "not assessed"}
    lines = ["# covercast benchmarks", "",
             f"Written by `{command}` ({plan_name} sizes), started {started}, "
             f"{info.get('wall_s', math.nan) / 60:.1f} min. Every figure below comes from this "
             "one run; ratios compare figures measured side by side in it.", "",
             "## Machine", "", *machine_lines(info)]
    end = info.get("load_average_end")
    if end:
        lines.append(f"- load average at the end: {' / '.join(map(str, end))}")
    lines += ["", "## Targets", "", "| target | figures (this run) | verdict |", "|---|---|---|"]
    for t in _targets(sections):
        lines.append(f"| {t['target']} | {t['figures']} | {word[t['holds']]} |")
    lines += ["", "Not decided by this report: whether `make bench` works from a fresh clone "
              "(it is the command that wrote the report when it was run from one)."]
    for s in sections:
        lines += ["", f"## {s.title}", ""]
        if s.status != "ok":
            lines.append(f"**{s.status}**: {s.reason}")
        elif s.reason:
            lines.append(f"Note: {s.reason}.")
        if s.status != "skipped":
            lines += [f"({s.seconds:.0f} s)", "", s.table]
    lines += ["", "Files: `results.csv` (one row per figure, with its target and verdict), one "
              "CSV per table (`population.csv`, `envs.csv`, `vector_split.csv`, `scaling.csv`, "
              "`generators.csv`, `rl.csv`), `scaling.png`."]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="covercast bench all", description=__doc__.splitlines()[0])
    add_arguments(ap)
    args = ap.parse_args(argv)
    return run_from_args(args)


def add_arguments(ap: argparse.ArgumentParser, *, with_out: bool = True) -> None:
    """The options of ``covercast bench all`` (also used by the ``covercast bench`` parser,
    which has its own ``--out``: ``with_out=False``)."""
    ap.add_argument("--quick", action="store_true",
                    help="all: smaller sizes, under 5 minutes on 2 cores (--out: the report "
                         "folder, default runs/bench)")
    ap.add_argument("--only", nargs="+", choices=SECTIONS, default=None,
                    help="all: run only these benchmarks (default: every one)")
    if with_out:
        ap.add_argument("--out", default=None,
                        help="folder of report.md, results.csv and scaling.png "
                             "(default runs/bench)")


def run_from_args(args: argparse.Namespace) -> int:
    """Run ``covercast bench all`` from parsed options."""
    out = args.out or "runs/bench"
    parts = ["covercast bench all"] + (["--quick"] if args.quick else [])
    if args.only:
        parts += ["--only", *args.only]
    if out != "runs/bench":
        parts += ["--out", out]
    bench_all("quick" if args.quick else "full", sections=args.only or SECTIONS, out=out,
              command=" ".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
