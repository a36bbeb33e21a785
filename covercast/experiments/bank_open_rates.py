"""``covercast experiment bank-open-rates``: are generated covers opened as often as procedural
ones under the same schedule? (issue 19's target: the committed diffusion bank's covers at least
90 % as often as procedural covers of the same style).

Design
------
* **Same schedule, same users, paired.** For each seed, ``users`` users of ``population`` are
  drawn once (:class:`~covercast.simulators.population.Population` with that seed) and split
  into one arm per style (user ``u`` gets style ``u mod n_styles``). Every user is pushed at
  08:00 and 20:00 UTC every day for ``days`` days (the seed paper's static schedule), each push
  a cover of the arm's style drawn uniformly from the bank. The run is repeated with every bank
  on the *same* users and the same random streams (the banks all hold 24 covers per style, so
  the same covers positions are drawn): only the covers differ.
* **Open rate** of a (bank, style): opens / delivered pushes of the arm (pooled over its users;
  an opted-out user receives no more pushes). The ratio generated / procedural is taken per
  seed; the table gives its mean over seeds with a Student-t 95 % interval. The issue quoted
  morning commuters, so the report also has the ratio per segment.
* **Why a bank is opened less** (counterfactual banks, same users): the user model judges a
  cover by four things (:mod:`covercast.simulators.response`): its ``quality``, its five image
  attributes and its style probabilities (through the user's taste) and its topic (through the
  user's topic affinity). Each learned bank is rerun with one of them replaced by the
  procedural bank's: quality by the procedural mean of the cover's style (``quality``), the
  style probabilities by the one-hot of the asked style (``style probs``), the attributes by
  the procedural mean of the style (``attributes``), the topics by the procedural covers'
  cycle (``topics``). The change of the ratio says how much of the gap each one makes. The user
  model is not changed.

Writes ``out/report.md``, ``out/open_rates.csv`` (per seed, bank, variant, style, segment),
``out/ratios.csv``, ``out/bank_stats.csv`` and ``out/config.json``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from covercast._io import atomic_write_csv, atomic_write_text, check_int, md_frame

__all__ = ["VARIANTS", "TARGET_RATIO", "counterfactual_bank", "arm_open_rates",
           "run_bank_open_rates"]

#: The open-rate target of issue 19: generated covers opened >= 90 % as often as procedural.
TARGET_RATIO = 0.9
#: Counterfactual variants of a learned bank (module docstring); "as built" is the bank itself.
VARIANTS: tuple[str, ...] = ("as built", "quality", "style probs", "attributes", "topics",
                             "all four")
_HOURS = (8, 20)


def counterfactual_bank(bank: Any, reference: Any, variant: str) -> Any:
    """``bank`` with one part replaced by ``reference``'s (the procedural bank) -- see the
    module docstring; ``"as built"`` returns ``bank``; ``"all four"`` replaces all four."""
    from covercast.covers.attributes import ATTRIBUTE_NAMES

    if variant not in VARIANTS:
        raise ValueError(f"Unknown variant {variant!r}; choose one of {list(VARIANTS)}.")
    if variant == "as built":
        return bank
    parts = ("quality", "style probs", "attributes", "topics") if variant == "all four" \
        else (variant,)
    b = bank.copy()
    na = len(ATTRIBUTE_NAMES)
    for s in range(b.n_styles):
        mine, ref = b.style == s, reference.style == s
        if "quality" in parts:
            b.quality[mine] = reference.quality[ref].mean()
        if "attributes" in parts:
            b.features[mine, :na] = reference.features[ref, :na].mean(0)
        if "style probs" in parts:
            b.features[mine, na:] = np.eye(b.n_styles, dtype=np.float32)[s]
        if "topics" in parts:
            b.topic[mine] = np.arange(int(mine.sum())) % len(b.topics)
    b.meta = {**b.meta, "counterfactual": variant}
    b.validate()
    return b


def arm_open_rates(bank: Any, params: Any, *, users: int, days: int, seed: int,
                   hours: Sequence[int] = _HOURS) -> pd.DataFrame:
    """Pushes and opens per (style arm, segment) of ``users`` users of ``params`` pushed at
    ``hours`` every day for ``days`` days with covers of their arm's style from ``bank``."""
    from covercast.simulators.population import Population

    pop = Population(params, users, bank=bank, seed=seed)
    n_styles = len(params.styles)
    seg = np.asarray(pop.hidden_state()["segment"])
    style = np.arange(users) % n_styles
    everyone = np.arange(users)
    spd = int(round(24 / pop.slot_hours))
    pushes = np.zeros(users)
    opens = np.zeros(users)
    for slot in range(days * spd):
        hour = slot * pop.slot_hours % 24
        out = pop.step(push=everyone, style=style) if hour in hours else pop.step()
        np.add.at(pushes, out.push_user, 1)
        np.add.at(opens, out.open_user, 1)
    names = [s.name for s in params.segments]
    df = pd.DataFrame({"style": np.asarray(params.styles)[style],
                       "segment": np.asarray(names)[seg], "pushes": pushes, "opens": opens})
    return df.groupby(["style", "segment"], as_index=False)[["pushes", "opens"]].sum()


#: Seed of the held-out procedural covers of the quality-proxy check (not the default bank's 0
#: nor the craft fit's 0 and 1).
PROXY_CHECK_SEED = 7


def _proxy_check(banks: dict[str, Any]) -> pd.DataFrame:
    """Is the craft estimate of generated covers' quality biased? Per style: the true craft of
    held-out procedural covers (4 per style x topic, seed :data:`PROXY_CHECK_SEED`), the
    estimate the learned banks' quality comes from on those same covers, and each learned
    bank's mean estimate. Empty when no learned bank uses the craft estimate."""
    learned = {k: b for k, b in banks.items() if b.meta.get("quality") == "craft"
               and b.generator != "procedural"}
    if not learned:
        return pd.DataFrame()
    from covercast.covers.procedural import procedural_bank
    from covercast.generators.banks import cover_quality, load_encoder

    held = procedural_bank(4, seed=PROXY_CHECK_SEED)
    est, _ = cover_quality(held.images, load_encoder(device="cpu"), "craft")
    rows = []
    for s, style in enumerate(held.styles):
        m = held.style == s
        rows.append({"style": style, "procedural craft (true)": float(held.quality[m].mean()),
                     "procedural craft (estimated)": float(est[m].mean()),
                     **{f"{k} (estimated)": float(b.quality[b.style == s].mean())
                        for k, b in learned.items()}})
    return pd.DataFrame(rows)


def _bank_stats(name: str, bank: Any) -> list[dict[str, Any]]:
    from covercast.covers.attributes import ATTRIBUTE_NAMES

    rows = []
    for s, style in enumerate(bank.styles):
        m = bank.style == s
        probs = bank.style_probs[m]
        topics = np.bincount(bank.topic[m], minlength=len(bank.topics))
        rows.append({"bank": name, "style": style, "covers": int(m.sum()),
                     "quality": float(bank.quality[m].mean()),
                     "own style prob": float(probs[:, s].mean()),
                     "read as its style": float(np.mean(probs.argmax(1) == s)),
                     "topics seen": int((topics > 0).sum()),
                     "top topic share": float(topics.max() / m.sum()),
                     **{a: float(bank.attributes[m, k].mean())
                        for k, a in enumerate(ATTRIBUTE_NAMES)}})
    return rows


def _ratios(rates: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """Per (bank, variant, *by): the open rates and the mean over seeds of the per-seed ratio
    to procedural, with a 95 % t interval."""
    from covercast.experiments.stats import _mean_ci

    g = rates.groupby(["seed", "bank", "variant", *by], as_index=False)[["pushes", "opens"]].sum()
    g["open_rate"] = g["opens"] / g["pushes"]
    ref = g[g["bank"] == "procedural"].set_index(["seed", *by])["open_rate"]
    g = g[g["bank"] != "procedural"].copy()
    g["procedural"] = ref.reindex(pd.MultiIndex.from_frame(g[["seed", *by]])).to_numpy()
    g["ratio"] = g["open_rate"] / g["procedural"]
    rows = []
    for key, d in g.groupby(["bank", "variant", *by], sort=False):
        ci = _mean_ci(d["ratio"].to_numpy(), 0.95)
        rows.append({**dict(zip(["bank", "variant", *by], key, strict=True)),
                     "seeds": ci["n"], "procedural open rate": float(d["procedural"].mean()),
                     "open rate": float(d["open_rate"].mean()), "ratio": ci["mean"],
                     "ci_low": ci["ci_low"], "ci_high": ci["ci_high"]})
    return pd.DataFrame(rows)


def _ratio_cell(r: pd.Series) -> str:
    return f"{r['ratio']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"


def run_bank_open_rates(out_dir: str | os.PathLike = "docs/results/bank_open_rates", *,
                        banks: Sequence[str] = ("diffusion", "vae-iat", "dcgan"),
                        seeds: int = 5, users: int = 5000, days: int = 14,
                        population: str = "calibrated-v1", seed: int = 0,
                        counterfactuals: bool = True) -> Path:
    """Run the comparison (module docstring) and write ``report.md``; returns its path."""
    from covercast.envs.base import resolve_bank
    from covercast.simulators.suite import load_population

    for name, v, lo in (("seeds", seeds, 2), ("users", users, 10), ("days", days, 1)):
        check_int(v, name, lo)
    banks = [b for b in banks if b != "procedural"]
    if not banks:
        raise ValueError("Give at least one bank besides procedural to compare with it.")
    params = load_population(population)
    t0 = time.perf_counter()
    loaded = {"procedural": resolve_bank("procedural", params)}
    for b in banks:
        loaded[b] = resolve_bank(b, params)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = {"banks": list(banks), "seeds": seeds, "users": users, "days": days,
              "population": params.name, "seed": seed, "hours_utc": list(_HOURS),
              "counterfactuals": counterfactuals,
              "bank_meta": {k: {m: v.meta.get(m) for m in ("named_bank_key", "per_style",
                                                           "topic_conditioned",
                                                           "topic_agreement")}
                            for k, v in loaded.items()}}
    atomic_write_text(out / "config.json", json.dumps(config, indent=2) + "\n")
    runs: list[tuple[str, str, Any]] = [("procedural", "as built", loaded["procedural"])]
    for b in banks:
        for v in (VARIANTS if counterfactuals else ("as built",)):
            runs.append((b, v, counterfactual_bank(loaded[b], loaded["procedural"], v)))
    seed_words = np.random.SeedSequence(seed).generate_state(seeds)
    frames = []
    for i, w in enumerate(seed_words):
        for name, variant, bank in runs:
            df = arm_open_rates(bank, params, users=users, days=days, seed=int(w))
            df.insert(0, "variant", variant)
            df.insert(0, "bank", name)
            df.insert(0, "seed", i)
            frames.append(df)
    rates = pd.concat(frames, ignore_index=True)
    atomic_write_csv(rates, out / "open_rates.csv")
    by_style = _ratios(rates, ["style"])
    by_seg = _ratios(rates, ["style", "segment"])
    ratios = pd.concat([by_style.assign(segment="all"), by_seg], ignore_index=True)
    atomic_write_csv(ratios, out / "ratios.csv")
    stats = pd.DataFrame([r for k, v in loaded.items() for r in _bank_stats(k, v)])
    atomic_write_csv(stats, out / "bank_stats.csv")
    proxy = _proxy_check(loaded)
    if not proxy.empty:
        atomic_write_csv(proxy, out / "quality_proxy_check.csv")
    path = out / "report.md"
    atomic_write_text(path, _report(config, by_style, by_seg, stats, params,
                                    time.perf_counter() - t0, proxy))
    return path


def _report(config: dict[str, Any], by_style: pd.DataFrame, by_seg: pd.DataFrame,
            stats: pd.DataFrame, params: Any, seconds: float,
            proxy: pd.DataFrame | None = None) -> str:
    built = by_style[by_style["variant"] == "as built"]
    table = pd.DataFrame({"style": list(params.styles)})
    ref = built.groupby("style")["procedural open rate"].first()
    table["procedural open rate"] = [f"{ref[s]:.2%}" for s in params.styles]
    for b in config["banks"]:
        d = built[built["bank"] == b].set_index("style")
        table[f"{b} open rate"] = [f"{d.loc[s, 'open rate']:.2%}" for s in params.styles]
        table[f"{b} / procedural"] = [_ratio_cell(d.loc[s]) for s in params.styles]
    lines = []
    for b in config["banks"]:
        d = built[built["bank"] == b]
        below = d[d["ratio"] < TARGET_RATIO]["style"].tolist()
        sure = d[d["ci_low"] >= TARGET_RATIO]["style"].tolist()
        verdict = "MET" if not below else "NOT MET"
        lines.append(f"- **{b}: {verdict}** -- ratio >= {TARGET_RATIO:g} on "
                     f"{len(d) - len(below)} of {len(d)} styles (mean over seeds)"
                     + (f"; below: {', '.join(below)}" if below else "")
                     + f"; lower 95 % bound >= {TARGET_RATIO:g} on {len(sure)} of {len(d)}.")
    seg_tab = by_seg[(by_seg["variant"] == "as built")].copy()
    seg_tab["ratio [95 % CI]"] = seg_tab.apply(_ratio_cell, axis=1)
    seg_tab["procedural open rate"] = seg_tab["procedural open rate"].map(lambda x: f"{x:.2%}")
    seg_tab["open rate"] = seg_tab["open rate"].map(lambda x: f"{x:.2%}")
    seg_tab = seg_tab[["bank", "segment", "style", "procedural open rate", "open rate",
                       "ratio [95 % CI]"]]
    cf = ""
    if config["counterfactuals"]:
        c = by_style.pivot_table(index=["bank", "style"], columns="variant", values="ratio")
        c = c[[v for v in VARIANTS if v in c.columns]].reset_index()
        cf = f"""## Why: counterfactual banks (same users, one part replaced by procedural's)

Ratio to procedural (mean over seeds) of each learned bank as built and with its quality, style
probabilities, image attributes or topics replaced by the procedural bank's (module docstring of
`covercast.experiments.bank_open_rates`). A part whose replacement brings the ratio up is what
costs the generated covers their opens. "all four" is not exactly 1: its covers are the
per-style means of the procedural ones, while the procedural bank's vary around them.

{chr(10).join(_why(c))}

{md_frame(c, '.3f')}
"""
    st = stats.copy()
    pc = ""
    if proxy is not None and not proxy.empty:
        pc = f"""## Is the quality estimate biased?

A generated cover's quality is the craft regression's estimate (`covercast.generators.banks`,
fitted on procedural covers). On held-out procedural covers (seed {PROXY_CHECK_SEED}, 4 per
style x topic) the estimate beside their true craft, and the learned banks' mean estimates: where
the estimate matches the truth on procedural covers of a style, a learned bank's lower estimate
for that style is the generator's covers as the proxy sees them (noise, washed-out colour, a
misplaced motif), not a proxy that undervalues the style. Whether the regression extrapolates
faithfully to generated images is not checked here (no human ratings exist).

{md_frame(proxy, '.3f')}
"""
    return f"""# Generated covers vs procedural covers under the same schedule

Written by `covercast experiment bank-open-rates --out OUT --banks {' '.join(config['banks'])}
--seeds {config['seeds']} --users {config['users']} --days {config['days']} --population
{config['population']} --seed {config['seed']}` in {seconds:.0f} s. Population
`{config['population']}`; per seed, {config['users']:,} users split into one arm per style, each
user pushed at 08:00 and 20:00 UTC every day for {config['days']} days with a cover of the arm's
style; every bank meets the same users with the same random streams (paired); only the covers
differ. Banks by name (`bank="diffusion"`, ...): 24 covers per style from the committed
checkpoints (`covercast.generators.banks.named_bank`). Open rate = opens / delivered pushes,
pooled over the arm; ratio = generated / procedural per seed, mean over {config['seeds']} seeds
with a 95 % t interval. The user model is the default population's, unchanged.

## Target: opened at least {TARGET_RATIO:.0%} as often as procedural covers of the same style

{chr(10).join(lines)}

{md_frame(table)}

## Per segment (the issue quoted morning commuters)

{md_frame(seg_tab)}

{cf}
{pc}
## What the banks hold (per style)

Quality (the craft estimate of generated covers, `covercast.generators.banks`), the encoder's
probability of the asked style, the share read as that style, how many of the 6 topics the
covers show and the most common topic's share, and the mean standardised image attributes.

{md_frame(st, '.3f')}
"""


def _why(c: pd.DataFrame) -> list[str]:
    """One line per (bank, style) below the target: the part whose replacement raises its
    ratio most, and what it raises it to."""
    parts = [v for v in ("quality", "style probs", "attributes", "topics") if v in c.columns]
    lines = []
    for _, r in c.iterrows():
        if r["as built"] >= TARGET_RATIO:
            continue
        gains = sorted(((r[p] - r["as built"], p) for p in parts), reverse=True)
        (g, best), rest = gains[0], gains[1:]
        others = ", ".join(f"{p} {d:+.3f}" for d, p in rest)
        lines.append(f"- {r['bank']} {r['style']}: {r['as built']:.3f}; with procedural "
                     f"{best} {r[best]:.3f} ({g:+.3f}; the others: {others}).")
    return lines or ["- Every learned bank and style is at or above the target."]


def cmd_experiment_bank_open_rates(args: Any) -> int:
    """``covercast experiment bank-open-rates``."""
    path = run_bank_open_rates(args.out, banks=args.banks, seeds=args.seeds, users=args.users,
                               days=args.days, population=args.population, seed=args.seed,
                               counterfactuals=not args.no_counterfactuals)
    print(f"report: {path}")
    print(path.read_text().split("## Per segment")[0].split("## Target")[1])
    return 0


def add_experiment(experiments: Any) -> None:
    """Register ``bank-open-rates`` on the CLI's ``experiment`` sub-parsers."""
    e = experiments.add_parser(
        "bank-open-rates", help="open rates of generated vs procedural covers under the same "
                                "schedule, per style (issue 19's 90 %% target)",
        description="Push the same users on the same static schedule with covers from each "
                    "bank (procedural and the learned banks by name), per style; report the "
                    "open-rate ratios to procedural with 95 %% intervals over seeds, per "
                    "segment, and counterfactual banks that show which part of a generated "
                    "cover (quality, style probabilities, attributes, topic) costs opens. "
                    "Seconds per seed; the first diffusion bank build about a minute.")
    e.set_defaults(func=cmd_experiment_bank_open_rates)
    e.add_argument("--out", default="docs/results/bank_open_rates", help="report folder")
    e.add_argument("--banks", nargs="+", default=["diffusion", "vae-iat", "dcgan"],
                   help="learned banks (names or .npz paths) to compare with procedural")
    e.add_argument("--seeds", type=int, default=5, help="seeds (independent user draws)")
    e.add_argument("--users", type=int, default=5000, help="users per seed (all arms)")
    e.add_argument("--days", type=int, default=14, help="days of the fixed schedule")
    e.add_argument("--population", default="calibrated-v1",
                   help="suite population name or params JSON")
    e.add_argument("--seed", type=int, default=0, help="master seed")
    e.add_argument("--no-counterfactuals", action="store_true",
                   help="only the banks as built")
    e.add_argument("--quiet", action="store_true", help="(no progress bars are shown)")
