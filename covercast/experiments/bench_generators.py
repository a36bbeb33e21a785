"""Speed of the cover generators (figures, not tests): ``covercast bench generators``.

For every generator -- procedural (numpy), VAE-IAT (row-LSTM decoder, and the conv decoder),
the DCGAN baseline and the diffusion model -- :func:`bench_generators` measures, on the CPU
and on a GPU when one is present:

* **covers/s** at batch 1 and at batch 256 (``batch_sizes``): wall-clock covers per second
  of ``sample``, the best of ``repeats`` timings after one warm-up call (weights do not change
  the speed, so the models are freshly initialised with the architectures of the committed
  checkpoints -- the ``standard`` preset of :func:`covercast.experiments.generator_report.model_specs`,
  the "small" diffusion UNet with topic conditioning -- plus diffusion's lighter ``compact``
  UNet); diffusion is timed with 20 DDIM steps (guided and unguided) and 10 DPM-Solver++
  steps;
* **parameters** of the model;
* **time per training epoch**: the median time of a few optimisation steps (after two warm-up
  steps) at the preset's batch size, times the steps of one epoch over the default training
  set (64 covers per style x topic: 1,920 covers).

The targets are the issue's, on the 2-core development CPU at 32x32: VAE-IAT >= 1,000
covers/s and diffusion with 20 DDIM steps >= 10 covers/s; the table gives each measurement's
ratio to its target. Timings on a shared machine vary from run to run; compare rows of one run.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from covercast._io import atomic_write_text

__all__ = ["bench_generators", "format_table", "TARGETS", "EPOCH_COVERS", "BENCH_MODELS"]

#: What :func:`bench_generators` can time (its ``generators`` argument).
BENCH_MODELS: tuple[str, ...] = ("procedural", "vae-iat", "vae-iat-conv", "dcgan", "diffusion",
                                 "diffusion-default")

#: Targets of the issue: covers/s at 32x32 on the CPU, by benchmark row.
TARGETS: dict[str, float] = {"vae-iat": 1000.0, "diffusion (20 DDIM, guided)": 10.0,
                             "diffusion (20 DDIM, unguided)": 10.0}
#: Covers in one training epoch (the default training set: 64 per style x topic).
EPOCH_COVERS = 64 * 5 * 6


def _time_best(fn: Any, repeats: int, warmup: Any = None) -> float:
    (warmup or fn)()
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _sync(device: Any) -> None:
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        torch.cuda.synchronize()


def _train_step_seconds(spec: Any, model: Any, dataset: Any, device: Any,
                        steps: int) -> float:
    """Median seconds of an optimisation step (after two warm-up steps)."""
    from covercast.experiments import generator_report as ev

    stamps: list[float] = []

    def callback(step: int, metrics: Any) -> None:
        _sync(device)
        stamps.append(time.perf_counter())

    tc = spec.train_config
    n = steps + 3
    if hasattr(tc, "phase1_steps"):
        # time phase 2 (adversarial, the costlier) when the model has one, else phase 1
        p2 = spec.family == "vae-iat"
        tc = type(tc)(**{**_fields(tc), "phase1_steps": 0 if p2 else n,
                         "phase2_steps": n if p2 else 0})
    else:
        tc = type(tc)(**{**_fields(tc), "steps": n})
    fn = {"diffusion": ev.train_diffusion, "vae-iat": ev.train_vae_iat,
          "vae": ev.train_vae_iat, "dcgan": ev.train_dcgan}[spec.family]
    fn(model, dataset, tc, progress=False, device=device, callback=callback)
    diffs = np.diff(stamps)[2:]
    return float(statistics.median(diffs)) if len(diffs) else float("nan")


def _fields(dc: Any) -> dict[str, Any]:
    import dataclasses

    return {f.name: getattr(dc, f.name) for f in dataclasses.fields(dc)}


def bench_generators(devices: Sequence[str] | None = None, *,
                     generators: Sequence[str] | None = None, size: int = 32,
                     covers: int | None = None, seed: int = 0, repeats: int = 3,
                     train_steps: int = 5, out: str | os.PathLike | None = None,
                     progress: bool = True, batch_sizes: Sequence[int] = (1, 256)
                     ) -> pd.DataFrame:
    """Measure every generator; returns one row per (generator, device).

    Parameters
    ----------
    devices
        ``"cpu"``, ``"cuda"`` (default: cpu, plus cuda when available).
    generators
        Subset of :data:`BENCH_MODELS` (default: all): ``vae-iat`` and ``dcgan`` and
        ``diffusion`` (guided and unguided) with the committed architectures,
        ``vae-iat-conv`` (conv decoder), ``diffusion-default`` (the library's default
        diffusion config, with self-attention), ``procedural``.
    size
        Cover side in pixels (32 or 64).
    covers
        Covers per timing (default: 4,096 for the fast generators, 64 for diffusion on the
        CPU, 1,024 on a GPU).
    seed
        Seed of the weights and the noise.
    repeats
        Timings per figure; the best is kept (>= 1).
    train_steps
        Timed optimisation steps per model (>= 1).
    out
        Also write the table as CSV (atomically).
    progress
        Print a line per measurement.
    batch_sizes
        Batch sizes of ``sample`` to time, one row each (default 1 and 256: the latency of a
        single cover, as in ``CoverGeneration-v0``, and the throughput of bank building).

    Returns
    -------
    pandas.DataFrame
        Columns ``generator, config, device, size, parameters, batch_size, covers,
        covers_per_s, target_covers_per_s, ratio, train_step_ms, train_batch,
        epoch_seconds, threads`` (torch's CPU threads).
    """
    import torch

    from covercast.covers.procedural import procedural_bank
    from covercast.experiments import generator_report as ev
    from covercast.generators.data import cover_dataset
    from covercast.generators.training import parameter_count, resolve_device

    if size not in (32, 64):
        raise ValueError(f"`size` must be 32 or 64, got {size!r}.")
    for name, v in (("repeats", repeats), ("train_steps", train_steps)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"`{name}` must be a positive int, got {v!r}.")
    if not batch_sizes or any(isinstance(b, bool) or not isinstance(b, int) or b < 1
                              for b in batch_sizes):
        raise ValueError(f"`batch_sizes` must be positive ints, got {batch_sizes!r}.")
    if covers is not None and (isinstance(covers, bool) or not isinstance(covers, int)
                               or covers < 1):
        raise ValueError(f"`covers` must be a positive int, got {covers!r}.")
    chosen = tuple(BENCH_MODELS if generators is None else generators)
    unknown = sorted(set(chosen) - set(BENCH_MODELS))
    if unknown or not chosen:
        raise ValueError(f"Unknown generator(s) {unknown or list(chosen)} to benchmark; choose "
                         f"from {list(BENCH_MODELS)}.")
    if devices is None:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    devs = [resolve_device(d) for d in devices]
    specs = ev.model_specs("standard", size=size, seed=seed)
    data = cover_dataset(8, size=size, seed=seed)
    rows: list[dict[str, Any]] = []

    def log(msg: str) -> None:
        if progress:
            print(msg, flush=True)

    if "procedural" in chosen:
        per_pair = max(1, math.ceil((covers or 4096) / 30))
        t = _time_best(lambda: procedural_bank(per_pair, size=size, seed=seed), repeats)
        rows.append({"generator": "procedural", "config": "numpy", "device": "cpu",
                     "size": size, "parameters": 0, "batch_size": per_pair * 30,
                     "covers": per_pair * 30, "covers_per_s": per_pair * 30 / t,
                     "train_step_ms": float("nan"), "train_batch": 0,
                     "epoch_seconds": float("nan"), "threads": torch.get_num_threads()})
        log(f"procedural: {rows[-1]['covers_per_s']:,.0f} covers/s")

    from covercast.generators.diffusion import DiffusionConfig, DiffusionCoverGenerator
    from covercast.generators.vae_iat import VAEIAT

    lstm = specs["vae-iat"]
    conv = ev.ModelSpec("vae-iat-conv", "vae-iat", "covers",
                        type(lstm.config)(**{**_fields(lstm.config), "decoder": "conv"}),
                        lstm.train_config)
    compact = ev.ModelSpec("diffusion-compact", "diffusion", "covers",
                           DiffusionConfig.compact(**{**_fields(specs["diffusion"].config),
                                                      "block_out_channels": (16, 32, 64),
                                                      "attention_levels": (False,) * 3,
                                                      "mid_attention": False}),
                           specs["diffusion"].train_config)
    ddim = {"sampler": "ddim", "num_inference_steps": 20, "eta": 1.0}
    plan = [("vae-iat", "vae-iat", lstm, "committed (row LSTM)", {}),
            ("vae-iat-conv", "vae-iat (conv decoder)", conv, "preset sizes, conv decoder", {}),
            ("dcgan", "dcgan", specs["dcgan"], "committed", {}),
            ("diffusion", "diffusion (20 DDIM, guided)", specs["diffusion"],
             "committed (small, attention)", {**ddim, "guidance_scale": 2.0}),
            ("diffusion", "diffusion (20 DDIM, unguided)", specs["diffusion"],
             "committed (small, attention)", {**ddim, "guidance_scale": 1.0}),
            ("diffusion", "diffusion (10 DPM-Solver++, guided)", specs["diffusion"],
             "committed (small, attention)",
             {"sampler": "dpmsolver++", "num_inference_steps": 10, "guidance_scale": 2.0}),
            ("diffusion-default", "diffusion (20 DDIM, guided)", compact,
             "compact (16/32/64, no attention)", {**ddim, "guidance_scale": 2.0})]
    plan = [p[1:] for p in plan if p[0] in chosen]
    for dev in devs:
        for label, spec, config_name, kw in plan:
            is_diff = spec.family == "diffusion"
            model = (DiffusionCoverGenerator if is_diff else
                     (VAEIAT if spec.family == "vae-iat" else ev.DCGAN))(spec.config, seed=seed)
            model.to(dev).eval()
            step = _train_step_seconds(spec, model, data, dev, train_steps)
            tb = spec.train_config.batch_size
            for batch in batch_sizes:
                slow = is_diff and dev.type == "cpu"
                n = covers or (max(batch, 8) if slow else max(batch, 4096 if batch > 1 else 256))
                g = torch.Generator().manual_seed(seed)

                def run(model: Any = model, n: int = n, kw: dict = kw, batch: int = batch,
                        g: torch.Generator = g, dev: Any = dev) -> None:
                    model.sample(0, n, generator=g, batch_size=batch, **kw)
                    _sync(dev)

                def warm(model: Any = model, kw: dict = kw, batch: int = batch,
                         g: torch.Generator = g, dev: Any = dev) -> None:
                    model.sample(0, min(batch, 4), generator=g, batch_size=batch, **kw)
                    _sync(dev)

                secs = _time_best(run, 1 if slow else repeats, warm)
                target = TARGETS.get(label) if size == 32 and dev.type == "cpu" and \
                    "default" not in spec.name and batch > 1 else None
                cps = n / secs
                rows.append({"generator": label, "config": config_name, "device": str(dev),
                             "size": size, "parameters": parameter_count(model),
                             "batch_size": batch, "covers": n, "covers_per_s": cps,
                             "target_covers_per_s": target,
                             "ratio": cps / target if target else float("nan"),
                             "train_step_ms": 1000 * step, "train_batch": tb,
                             "epoch_seconds": step * EPOCH_COVERS / tb,
                             "threads": torch.get_num_threads()})
                log(f"{label} [{config_name}] on {dev}, batch {batch}: {cps:,.1f} covers/s, "
                    f"{1000 * step:.1f} ms/train step")
    table = pd.DataFrame(rows)
    if out is not None:
        atomic_write_text(out, table.to_csv(index=False))
    return table


def format_table(table: pd.DataFrame) -> str:
    """The benchmark table as fixed-width text, with targets and ratios."""
    lines = [f"{'generator':<36} {'config':<34} {'device':<6} {'params':>9} {'batch':>5} "
             f"{'covers/s':>10} {'target':>7} {'ratio':>6} {'step ms':>8} {'epoch s':>8}"]
    for _, r in table.iterrows():
        target = r.get("target_covers_per_s")
        has_t = target is not None and isinstance(target, (int, float)) and \
            math.isfinite(target)
        lines.append(
            f"{r['generator']:<36} {r['config']:<34} {r['device']:<6} "
            f"{int(r['parameters']):>9,} {int(r['batch_size']):>5} {r['covers_per_s']:>10,.1f} "
            f"{(f'{target:,.0f}' if has_t else '-'):>7} "
            f"{(f'{r.ratio:.2f}' if has_t else '-'):>6} "
            f"{(f'{r.train_step_ms:.1f}' if math.isfinite(r.train_step_ms) else '-'):>8} "
            f"{(f'{r.epoch_seconds:.1f}' if math.isfinite(r.epoch_seconds) else '-'):>8}")
    lines.append(f"(targets: 32x32 on the CPU; an epoch is {EPOCH_COVERS:,} training covers; "
                 "timings on a shared machine vary between runs)")
    return "\n".join(lines)
