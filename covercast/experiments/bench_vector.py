"""Where the population vector environment spends its time, and how it scales (figures, not
tests).

* :func:`vector_split` times :meth:`PopulationVectorEnv.step
  <covercast.envs.vector.PopulationVectorEnv.step>` and splits each step into the **engine**
  (:meth:`Population.step <covercast.simulators.population.Population.step>`, the slot itself,
  and :meth:`~covercast.simulators.population.Population.replace_users`, the users that
  autoreset brings in) and the **env layer** (everything else: checking the actions, the
  observation, the responses in ``info``, the rewards, the autoreset bookkeeping). Both parts
  are measured in the same steps, by timing the engine's two methods from inside the env.
* :func:`scaling` measures user-steps/s and memory for a range of population sizes, for the
  vector env and for the engine alone (the same actions, straight to ``Population.step``), each
  size in a fresh Python process so that its resident set size (RSS) is its own.

Two workloads, because the engine's cost depends on how many users are pushed:

* ``random``: uniform random actions, as ``covercast bench envs`` steps the env (``1 +
  n_styles`` actions, so about 5 users in 6 are pushed every slot, and many opt out and are
  replaced: a stress test, not a policy anybody would run);
* ``schedule``: every user pushed at 08:00 and 20:00 UTC with a random style, nobody
  otherwise (the engine benchmark's ``StaticSchedulePolicy((8, 20))`` workload).

``python -m covercast.experiments.bench_vector --out docs/results/bench/vector_split.md``
writes the split as a Markdown report; ``--scaling`` adds the scaling table.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from covercast._io import atomic_write_text

__all__ = ["WORKLOADS", "PARTS", "vector_split", "scaling", "format_split", "format_parts",
           "format_scaling", "main"]

#: The action workloads (see the module docstring).
WORKLOADS = ("random", "schedule")
_SCHEDULE_HOURS = (8, 20)


#: The env layer's parts timed by :func:`vector_split`: (object, method, part); a part sums its
#: methods (the autoreset part: the new users' first observation rows and their profile reset).
_PARTS = (("env", "_check_actions", "actions"), ("builder", "record_sessions", "profile"),
          ("env", "_responses", "responses"), ("env", "_rewards", "rewards"),
          ("builder", "build", "observation"), ("env", "_fresh_rows", "autoreset"),
          ("builder", "reset_users", "autoreset"), ("env", "_add_history", "autoreset"))
PARTS = ("actions", "profile", "responses", "rewards", "observation", "autoreset")


def _actions(env: Any, workload: str, steps: int, seed: int) -> list[np.ndarray]:
    """The actions of ``steps`` steps from the env's start (hourly slots from 00:00 UTC).

    ``random``: a pool of 16 action vectors drawn from ``env.action_space`` (reused in turn, so
    drawing them costs nothing in the timed loop); ``schedule``: style ``1 + k`` (k random) for
    every user at 08:00 and 20:00, 0 otherwise.
    """
    n = env.num_envs
    if workload == "random":
        env.action_space.seed(seed)
        pool = [env.action_space.sample().astype(np.int64) for _ in range(16)]
        return [pool[i % len(pool)] for i in range(steps)]
    if workload == "schedule":
        rng = np.random.default_rng(seed)
        zeros = np.zeros(n, dtype=np.int64)
        step_h = env.slot_minutes / 60.0
        out = []
        for i in range(steps):
            hour = int(np.floor(env._day0_h + i * step_h + 1e-9)) % 24
            out.append(rng.integers(1, 1 + env.n_styles, size=n) if hour in _SCHEDULE_HOURS
                       and (i * step_h) % 1.0 < 1e-9 else zeros)
        return out
    raise ValueError(f"`workload` must be one of {WORKLOADS}, got {workload!r}.")


def _check_sizes(ns: Sequence[int], name: str = "ns") -> list[int]:
    ns = list(ns)
    if not ns or any(isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1
                     for n in ns):
        raise ValueError(f"`{name}` must be a non-empty list of positive integers, got {ns!r}.")
    return [int(n) for n in ns]


def _split_once(n: int, workload: str, steps: int, seed: int) -> dict[str, float]:
    """One timed run of ``steps`` steps (after ``steps`` warm-up steps) at ``n`` users."""
    from covercast.envs.observation import ObservationBuilder
    from covercast.envs.vector import PopulationVectorEnv
    from covercast.experiments.bench_rl import _timed_methods
    from covercast.simulators.population import Population

    env = PopulationVectorEnv(n)
    env.reset(seed=seed)
    acts = _actions(env, workload, 2 * steps, seed)
    classes = {"env": PopulationVectorEnv, "builder": ObservationBuilder}
    timed = {(Population, "step"), (Population, "replace_users")} | {
        (classes[obj], method) for obj, method, _ in _PARTS if hasattr(classes[obj], method)}
    acc = {method: 0.0 for _, method in timed}
    step = env.step
    replaced = 0
    with contextlib.ExitStack() as stack:
        for klass, method in timed:
            stack.enter_context(_timed_methods(klass, (method,), acc))
        for a in acts[:steps]:                             # warm-up: a steady state of users
            step(a)
        acc.update(dict.fromkeys(acc, 0.0))
        t0 = time.perf_counter()
        for a in acts[steps:]:
            _, _, term, trunc, _ = step(a)
            replaced += int(np.count_nonzero(term | trunc))
        total = time.perf_counter() - t0
    env.close()
    engine = acc["step"] + acc["replace_users"]
    parts = dict.fromkeys((f"{part}_s" for part in PARTS), 0.0)
    for _, method, part in _PARTS:
        parts[f"{part}_s"] += acc.get(method, 0.0)
    parts["rest_s"] = total - engine - sum(parts.values())
    return {"total_s": total, "engine_step_s": acc["step"],
            "engine_replace_s": acc["replace_users"], "engine_s": engine,
            "env_layer_s": total - engine, "replaced_per_step": replaced / steps, **parts}


def vector_split(ns: Sequence[int] = (10_000, 100_000), *, steps: int | None = None,
                 workloads: Sequence[str] = WORKLOADS, repeats: int = 3, seed: int = 0,
                 verbose: bool = True) -> pd.DataFrame:
    """Time the vector env's ``step`` and split it into engine and env layer.

    Parameters
    ----------
    ns : sequence of int
        Numbers of users.
    steps : int, optional
        Timed steps (slots) per run, after as many warm-up steps; default 48 (two days) below
        50,000 users, else 24.
    workloads : sequence of str
        Action workloads (:data:`WORKLOADS`).
    repeats : int
        Runs per size and workload; the run with the smallest total is reported (the machine
        is shared: the fastest run is the code's speed).
    seed : int
        Seed of the env and of the actions.
    verbose : bool
        Print the table.

    Returns
    -------
    pandas.DataFrame
        One row per size and workload: ``n_users``, ``workload``, ``steps``, ``step_ms``,
        ``engine_ms`` (``engine_step_ms`` + ``engine_replace_ms``), ``env_layer_ms`` (per step),
        ``env_over_engine`` (env layer / engine), ``user_steps_per_s`` (the env) and
        ``engine_user_steps_per_s`` (users x steps / engine time), ``replaced_per_step``.
    """
    ns = _check_sizes(ns)
    for w in workloads:
        if w not in WORKLOADS:
            raise ValueError(f"`workloads` must be among {WORKLOADS}, got {w!r}.")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"`repeats` must be a positive integer, got {repeats!r}.")
    rows = []
    for n in ns:
        k = steps if steps is not None else (48 if n < 50_000 else 24)
        for w in workloads:
            best = min((_split_once(n, w, k, seed) for _ in range(repeats)),
                       key=lambda r: r["total_s"])
            ms = 1e3 / k
            rows.append({
                "n_users": n, "workload": w, "steps": k,
                "step_ms": best["total_s"] * ms, "engine_ms": best["engine_s"] * ms,
                "engine_step_ms": best["engine_step_s"] * ms,
                "engine_replace_ms": best["engine_replace_s"] * ms,
                "env_layer_ms": best["env_layer_s"] * ms,
                "env_over_engine": best["env_layer_s"] / best["engine_s"],
                "user_steps_per_s": n * k / best["total_s"],
                "engine_user_steps_per_s": n * k / best["engine_s"],
                "replaced_per_step": best["replaced_per_step"],
                **{f"{part}_ms": best[f"{part}_s"] * ms for part in (*PARTS, "rest")},
            })
    df = pd.DataFrame(rows)
    if verbose:
        print(format_split(df))
    return df


def _split_in(root: str, n: int, workload: str, steps: int, seed: int) -> dict[str, float]:
    """:func:`_split_once` run by the covercast found at ``root`` (a checkout), in a fresh
    Python process."""
    code = ("import json; from covercast.experiments.bench_vector import _split_once; "
            f"print(json.dumps(_split_once({n}, {workload!r}, {steps}, {seed})))")
    if not os.path.isfile(os.path.join(root, "covercast", "__init__.py")):
        raise RuntimeError(f"The split run of {root} cannot start: no covercast package "
                           "there (give the root of a checkout).")
    # run in the checkout: `python -c` puts the working directory first on the path
    env = {**os.environ, "PYTHONPATH": os.path.abspath(root), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", code], env=env, cwd=os.path.abspath(root),
                         capture_output=True, text=True, check=False)
    if res.returncode:
        raise RuntimeError(f"The split run of {root} failed:\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def compare(baseline: str, ns: Sequence[int] = (10_000,), *, steps: int | None = None,
            workloads: Sequence[str] = WORKLOADS, repeats: int = 3, seed: int = 0
            ) -> pd.DataFrame:
    """The vector env's step, engine and env layer of the code at ``baseline`` (a checkout of
    an earlier commit) and of this code, side by side: each repeat runs both, one after the
    other, each in a fresh process (a loaded machine slows both alike); best of the repeats,
    and ``paired_speedup``: the median over the repeats of before's step time / after's in
    the same repeat (robust to a load that changes between repeats; 1 for ``"before"``).
    One row per size, workload and code (``code`` is ``"before"`` or ``"after"``)."""
    ns = _check_sizes(ns)
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    rows = []
    for n in ns:
        k = steps if steps is not None else (48 if n < 50_000 else 24)
        for w in workloads:
            runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
            for _ in range(repeats):
                runs["before"].append(_split_in(baseline, n, w, k, seed))
                runs["after"].append(_split_in(here, n, w, k, seed))
            paired = float(np.median([b["total_s"] / a["total_s"] for b, a in
                                      zip(runs["before"], runs["after"], strict=True)]))
            for code, rs in runs.items():
                best = min(rs, key=lambda r: r["total_s"])
                rows.append({"n_users": n, "workload": w, "code": code,
                             "paired_speedup": paired if code == "after" else 1.0,
                             "step_ms": best["total_s"] * 1e3 / k,
                             "engine_ms": best["engine_s"] * 1e3 / k,
                             "env_layer_ms": best["env_layer_s"] * 1e3 / k,
                             "user_steps_per_s": n * k / best["total_s"],
                             "engine_user_steps_per_s": n * k / best["engine_s"]})
    return pd.DataFrame(rows)


def format_compare(df: pd.DataFrame) -> str:
    """Markdown table of :func:`compare`, with the speed-ups (before / after times: of the
    best runs, and the median of the paired runs)."""
    lines = ["| users | workload | code | step ms | engine ms | env layer ms | env user-steps/s "
             "| engine user-steps/s | step speed-up | engine speed-up | paired step speed-up |",
             "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (n, w), g in df.groupby(["n_users", "workload"], sort=False):
        b = g[g.code == "before"].iloc[0]
        for _, r in g.iterrows():
            lines.append(f"| {n:,} | {w} | {r.code} | {r.step_ms:.3f} | {r.engine_ms:.3f} | "
                         f"{r.env_layer_ms:.3f} | {r.user_steps_per_s / 1e6:.2f} M | "
                         f"{r.engine_user_steps_per_s / 1e6:.2f} M | "
                         f"{b.step_ms / r.step_ms:.2f}x | {b.engine_ms / r.engine_ms:.2f}x | "
                         f"{r.paired_speedup:.2f}x |")
    return "\n".join(lines)


def format_parts(df: pd.DataFrame) -> str:
    """The env layer by part (ms per step) as a Markdown table."""
    names = [*PARTS, "rest"]
    lines = ["| users | workload | env layer ms | " + " | ".join(names) + " |",
             "|---:|---|---:|" + "---:|" * len(names)]
    for r in df.itertuples():
        lines.append(f"| {r.n_users:,} | {r.workload} | {r.env_layer_ms:.3f} | " +
                     " | ".join(f"{getattr(r, f'{p}_ms'):.3f}" for p in names) + " |")
    return "\n".join(lines)


def format_split(df: pd.DataFrame) -> str:
    """The split as a Markdown table."""
    lines = ["| users | workload | step ms | engine ms (slot + replace) | env layer ms | "
             "env / engine | env user-steps/s | engine user-steps/s | replaced / step |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in df.itertuples():
        lines.append(f"| {r.n_users:,} | {r.workload} | {r.step_ms:.3f} | {r.engine_ms:.3f} "
                     f"({r.engine_step_ms:.3f} + {r.engine_replace_ms:.3f}) | "
                     f"{r.env_layer_ms:.3f} | {r.env_over_engine:.2f} | "
                     f"{r.user_steps_per_s / 1e6:.2f} M | "
                     f"{r.engine_user_steps_per_s / 1e6:.2f} M | {r.replaced_per_step:.1f} |")
    return "\n".join(lines)


# ============================================================================ scaling
def _peak_rss_mib() -> float:
    """High-water mark of this process's resident set size, in MiB.

    ``VmHWM`` of ``/proc/self/status`` on Linux: it belongs to the process's own memory map,
    made new by ``exec`` (``getrusage``'s ``ru_maxrss`` would carry over the peak of the process
    that started this one); ``ru_maxrss`` elsewhere.
    """
    from covercast.experiments.bench import _peak_rss_mib as ru_maxrss_mib
    from covercast.experiments.bench import _proc_status_mib

    hwm = _proc_status_mib("VmHWM")
    return hwm if math.isfinite(hwm) else ru_maxrss_mib()


def _scaling_one(target: str, n: int, steps: int, workload: str, seed: int) -> dict[str, float]:
    """Run in a fresh process: time ``steps`` steps of the env or the engine alone at ``n``."""
    from covercast.envs.vector import PopulationVectorEnv

    rss0 = _peak_rss_mib()
    env = PopulationVectorEnv(n)
    env.reset(seed=seed)
    acts = _actions(env, workload, steps + 1, seed)
    if target == "env":
        step = env.step
    elif target == "engine":
        pop = env.population

        def step(a: np.ndarray) -> Any:
            push = a > 0
            return pop.step(push=push, style=a - 1) if push.any() else pop.step()
    else:
        raise ValueError(f"`target` must be 'env' or 'engine', got {target!r}.")
    step(acts[0])
    t0 = time.perf_counter()
    for a in acts[1:]:
        step(a)
    dt = time.perf_counter() - t0
    return {"user_steps_per_s": n * steps / dt, "seconds": dt,
            "peak_rss_mib": _peak_rss_mib(), "rss_before_mib": rss0}


def default_scaling_steps(n: int) -> int:
    """Timed steps at ``n`` users: a few seconds of work at most (5 steps at 1,000,000)."""
    if n >= 1_000_000:
        return 5
    if n >= 100_000:
        return 24
    if n >= 10_000:
        return 96
    return 240


def scaling(ns: Sequence[int] = (1, 100, 10_000, 100_000, 1_000_000), *,
            workload: str = "random", steps: int | None = None, seed: int = 0,
            timeout_s: float = 600.0, verbose: bool = True) -> pd.DataFrame:
    """User-steps/s and peak RSS of the vector env and of the engine alone at each size.

    Every (size, target) runs in a fresh Python process (``python -m
    covercast.experiments.bench_vector --one ...``), so its peak RSS is its own: the
    interpreter and imports (``rss_before_mib``, measured before the population is built) plus
    the population and the env.

    Returns
    -------
    pandas.DataFrame
        One row per size and target (``env``, ``engine``): ``n_users``, ``target``,
        ``workload``, ``steps``, ``user_steps_per_s``, ``seconds``, ``peak_rss_mib``,
        ``rss_before_mib``.
    """
    ns = _check_sizes(ns)
    if workload not in WORKLOADS:
        raise ValueError(f"`workload` must be one of {WORKLOADS}, got {workload!r}.")
    rows = []
    for n in ns:
        k = default_scaling_steps(n) if steps is None else steps
        for target in ("env", "engine"):
            cmd = [sys.executable, "-m", "covercast.experiments.bench_vector", "--one", target,
                   str(n), str(k), workload, str(seed)]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                                  env={**os.environ, "OMP_NUM_THREADS":
                                       os.environ.get("OMP_NUM_THREADS", "1")})
            if proc.returncode != 0:
                raise RuntimeError(f"Scaling run {target} at N={n} failed "
                                   f"(exit {proc.returncode}):\n{proc.stderr[-2000:]}")
            res = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append({"n_users": n, "target": target, "workload": workload, "steps": k,
                         **res})
            if verbose:
                print(f"  scaling {target:<6} N={n:>9,}: {res['user_steps_per_s']:>14,.0f} "
                      f"user-steps/s, peak RSS {res['peak_rss_mib']:,.0f} MiB", flush=True)
    return pd.DataFrame(rows)


def format_scaling(df: pd.DataFrame) -> str:
    """The scaling table as Markdown (env and engine side by side)."""
    lines = ["| users | steps | env user-steps/s | engine user-steps/s | env / engine time | "
             "env peak RSS MiB | engine peak RSS MiB |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for n, g in df.groupby("n_users", sort=True):
        e = g[g["target"] == "env"].iloc[0]
        s = g[g["target"] == "engine"].iloc[0]
        lines.append(f"| {n:,} | {int(e['steps'])} | {e['user_steps_per_s']:,.0f} | "
                     f"{s['user_steps_per_s']:,.0f} | "
                     f"{s['user_steps_per_s'] / e['user_steps_per_s']:.2f} | "
                     f"{e['peak_rss_mib']:,.0f} | {s['peak_rss_mib']:,.0f} |")
    return "\n".join(lines)


def plot_scaling(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Two panels (user-steps/s and peak RSS against users, log-log) saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from covercast._io import atomic_path

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for target, style in (("env", "o-"), ("engine", "s--")):
        g = df[df["target"] == target].sort_values("n_users")
        label = "vector env" if target == "env" else "engine alone"
        ax1.plot(g["n_users"], g["user_steps_per_s"], style, label=label)
        ax2.plot(g["n_users"], g["peak_rss_mib"], style, label=label)
    ax1.set(xscale="log", yscale="log", xlabel="users N", ylabel="user-steps / s",
            title=f"throughput ({df['workload'].iloc[0]} actions)")
    ax2.set(xscale="log", yscale="log", xlabel="users N", ylabel="peak RSS (MiB)",
            title="memory (whole process)")
    for ax in (ax1, ax2):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def split_report(split: pd.DataFrame, command: str, scale: pd.DataFrame | None = None,
                 title: str = "Population vector env: engine vs env layer") -> str:
    """The Markdown report of :func:`vector_split` (and :func:`scaling`)."""
    from covercast.experiments.bench_report import machine_info, machine_lines

    parts = [f"# {title}", "", f"Written by `{command}` on "
             f"{time.strftime('%Y-%m-%d %H:%M %Z')}.", "", *machine_lines(machine_info()), "",
             "Engine = `Population.step` (the slot) + `Population.replace_users` (the users "
             "autoreset brings in); env layer = the rest of `PopulationVectorEnv.step` "
             "(actions, observation, responses and rewards, autoreset bookkeeping). Best of "
             "the repeats (shared machine).", "", format_split(split), "",
             "The env layer by part (ms per step): `actions` checks them, `profile` adds the "
             "slot's sessions to the hour-of-day profiles, `responses` builds `info`, `rewards` "
             "the rewards, `observation` the observation matrix (from the engine's arrays), "
             "`autoreset` the new users' rows; `rest` is the step's own code (masks, "
             "`final_obs` / `final_info`, truncation).", "", format_parts(split)]
    if scale is not None:
        parts += ["", "## Scaling (each size in a fresh process)", "", format_scaling(scale)]
    return "\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--one", nargs=5, metavar=("TARGET", "N", "STEPS", "WORKLOAD", "SEED"),
                    help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, nargs="+", default=[10_000, 100_000],
                    help="numbers of users of the split")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    ap.add_argument("--scaling", action="store_true",
                    help="also the scaling table for 1, 100, 10k, 100k, 1M users")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="write the Markdown report there")
    ap.add_argument("--title", default="Population vector env: engine vs env layer",
                    help="title of the report")
    ap.add_argument("--baseline", default=None, metavar="CHECKOUT",
                    help="also time the code of this checkout (an earlier commit), side by "
                         "side with this code (--baseline-rev names its commit in the report)")
    ap.add_argument("--baseline-rev", default=None, help="the baseline's commit, for the report")
    args = ap.parse_args(argv)
    if args.one:
        target, n, k, workload, seed = args.one
        print(json.dumps(_scaling_one(target, int(n), int(k), workload, int(seed))))
        return 0
    split = vector_split(args.n, steps=args.steps, workloads=args.workloads,
                         repeats=args.repeats, seed=args.seed)
    scale = scaling(seed=args.seed) if args.scaling else None
    before = None
    if args.baseline:
        before = compare(args.baseline, args.n, steps=args.steps, workloads=args.workloads,
                         repeats=args.repeats, seed=args.seed)
        print(format_compare(before))
    if args.out:
        cmd = shlex.join(["python", "-m", "covercast.experiments.bench_vector",
                          *(sys.argv[1:] if argv is None else argv)])
        text = split_report(split, cmd, scale, title=args.title)
        if before is not None:
            rev = f" (commit {args.baseline_rev})" if args.baseline_rev else ""
            text += ("\n## Before and after, side by side\n\nBefore = the code at "
                     f"`{args.baseline}`{rev}; after = this code. Each repeat runs both, one "
                     "after the other, each in a fresh process; best of the repeats; speed-up "
                     "= before's time / after's (step: the whole env step; engine: "
                     "`Population.step` + `replace_users`); the paired speed-up is the median "
                     "over the repeats of the ratio within each repeat (the load of a shared "
                     "machine changes between repeats).\n\n" + format_compare(before) + "\n")
        atomic_write_text(args.out, text)
        if scale is not None:
            plot_scaling(scale, os.path.splitext(args.out)[0] + "_scaling.png")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
