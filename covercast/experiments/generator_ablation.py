"""The diffusion recipe, measured: an ablation and a sampler sweep on a validation split.

``covercast generators ablate --out DIR`` trains one diffusion model per *variant* (the full
recipe, the recipe with one ingredient taken out or swapped, and the old recipe) for the same
number of steps, samples each with the same sampler, and scores the covers against a
**validation** split of real covers (procedural covers rendered with seed ``seed + 3``; the
report of ``covercast generators evaluate`` uses seeds ``seed + 1`` and ``seed + 2``, so the
choices made here never see its test set). ``covercast generators sampler-sweep --model DIR``
scores one trained model under a grid of samplers (DDIM with several ``eta``, DPM-Solver++,
step counts, guidance weights) on the same validation split and names the best.

Both write ``ablation.csv`` / ``sampler_sweep.csv`` (one row per variant or sampler),
``config.json`` and a Markdown table. Distances are in the project's cover-encoder features,
**not Inception** (see :data:`covercast.generators.evaluate.NOT_INCEPTION_NOTE`).

Metrics per row: Frechet distance (FD), KID, precision and recall, style accuracy overall and
per style, mode collapse (style x topic modes, as in the report), covers/s of the sampling run,
the training seconds, and the parameter count.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from covercast._io import atomic_write_csv, atomic_write_text, md_table
from covercast.covers.attributes import DEFAULT_STYLES, DEFAULT_TOPICS
from covercast.experiments.generator_report import ModelSpec, obtain_model
from covercast.generators.data import cover_dataset
from covercast.generators.diffusion import (
    DiffusionConfig,
    DiffusionCoverGenerator,
    DiffusionTrainConfig,
)
from covercast.generators.encoder import CoverEncoder
from covercast.generators.evaluate import (
    NOT_INCEPTION_NOTE,
    frechet_distance,
    kernel_distance,
    mode_collapse,
    precision_recall,
)
from covercast.generators.training import parameter_count, resolve_device

__all__ = ["VALIDATION_SEED_OFFSET", "recipe_variants", "ValidationSet", "score_generator",
           "AblationConfig", "run_ablation", "sweep_samplers", "DEFAULT_SAMPLER_GRID"]

#: The validation split is rendered with seed ``seed + VALIDATION_SEED_OFFSET``.
VALIDATION_SEED_OFFSET = 3


def recipe_variants(arch: str = "compact", *, steps: int = 1500, batch_size: int = 32,
                    seed: int = 0, size: int = 32) -> dict[str, tuple[DiffusionConfig,
                                                                      DiffusionTrainConfig]]:
    """The variants of the ablation: name -> (model config, training config).

    ``full`` is the recipe (v-prediction, zero-terminal-SNR betas, EMA, min-SNR-5 weighting,
    fresh covers every epoch, style and topic conditioning); each ``no X`` variant takes one
    ingredient out (or swaps it: ``eps+offset`` is epsilon-prediction with offset noise 0.1
    instead of v-prediction and zero terminal SNR); ``old`` is the recipe of the previously
    committed checkpoint (epsilon, EMA, fixed covers, style only).
    """
    make = DiffusionConfig.compact if arch == "compact" else getattr(DiffusionConfig, arch)
    common = {"styles": DEFAULT_STYLES, "image_size": size}
    full_m = make(prediction_type="v_prediction", rescale_betas_zero_snr=True,
                  topics=DEFAULT_TOPICS, **common)
    full_t = DiffusionTrainConfig(steps=steps, batch_size=batch_size, lr=4e-4,
                                  warmup_steps=300 if steps >= 600 else steps // 5,
                                  ema_decay=0.999,
                                  min_snr_gamma=5.0, fresh_covers=True, seed=seed)
    rep = dataclasses.replace
    return {
        "full": (full_m, full_t),
        "no zero-snr (v, cosine)": (rep(full_m, rescale_betas_zero_snr=False), full_t),
        "eps+offset (no v, no zero-snr)": (rep(full_m, prediction_type="epsilon",
                                               rescale_betas_zero_snr=False),
                                           rep(full_t, offset_noise=0.1)),
        "no min-snr": (full_m, rep(full_t, min_snr_gamma=0.0)),
        "no ema": (full_m, rep(full_t, ema_decay=0.0)),
        "no fresh covers": (full_m, rep(full_t, fresh_covers=False)),
        "no topic": (rep(full_m, topics=()), full_t),
        "old (eps, fixed, style only)": (
            rep(full_m, prediction_type="epsilon", rescale_betas_zero_snr=False, topics=()),
            rep(full_t, min_snr_gamma=0.0, fresh_covers=False)),
    }


@dataclass
class ValidationSet:
    """Real covers to score against, with the encoder's features and modes of them."""

    encoder: CoverEncoder
    features: np.ndarray
    modes: tuple[np.ndarray, np.ndarray]
    seed: int
    n: int

    @classmethod
    def build(cls, encoder: CoverEncoder, *, per_style_topic: int = 10, size: int = 32,
              seed: int = 0) -> ValidationSet:
        """Render the validation covers (seed ``seed + VALIDATION_SEED_OFFSET``)."""
        vseed = seed + VALIDATION_SEED_OFFSET
        ds = cover_dataset(per_style_topic, size=size, seed=vseed)
        probs = encoder.style_probs(ds.images)
        return cls(encoder, encoder.features(ds.images),
                   (probs.argmax(1), encoder.topic_probs(ds.images).argmax(1)), vseed, len(ds))


def score_generator(model: DiffusionCoverGenerator | Any, val: ValidationSet, *,
                    per_style: int = 60, seed: int = 0, kid_subsets: int = 20,
                    min_mode_share: float = 0.1, **sample_kwargs: Any) -> dict[str, Any]:
    """Sample ``per_style`` covers of every style (topics cycled when the model takes topics)
    and score them against the validation set; returns a flat dict of metrics."""
    n_s, n_t = len(DEFAULT_STYLES), len(DEFAULT_TOPICS)
    labels = np.repeat(np.arange(n_s), per_style)
    kw = dict(sample_kwargs)
    if getattr(model, "topics", None):
        kw["topic"] = (np.arange(len(labels)) % n_t).tolist()
    g = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    images = model.sample(labels.tolist(), len(labels), generator=g, **kw)
    cps = len(labels) / max(time.perf_counter() - t0, 1e-9)
    enc = val.encoder
    feat = enc.features(images)
    probs = enc.style_probs(images)
    pred = probs.argmax(1)
    rng = np.random.default_rng(seed)
    kid, _ = kernel_distance(val.features, feat, rng=rng, subsets=kid_subsets)
    prec, rec = precision_recall(val.features, feat, k=3)
    mc = mode_collapse(pred, enc.topic_probs(images).argmax(1), val.modes[0], val.modes[1],
                       n_s, n_t, min_share=min_mode_share)
    row: dict[str, Any] = {"fd": frechet_distance(val.features, feat), "kid": kid,
                           "precision": prec, "recall": rec,
                           "style_accuracy": float(np.mean(pred == labels))}
    per = [float(np.mean(pred[labels == s] == s)) for s in range(n_s)]
    row["min_style_accuracy"] = min(per)
    row.update({f"acc_{name}": a for name, a in zip(DEFAULT_STYLES, per, strict=True)})
    if "topic" in kw:
        row["topic_accuracy"] = float(np.mean(enc.topic_probs(images).argmax(1)
                                              == np.asarray(kw["topic"])))
    row.update(mode_collapse=mc["rate"], covers_per_s=cps)
    row["_images"], row["_labels"] = images, labels
    return row


@dataclass(frozen=True)
class AblationConfig:
    """Settings of :func:`run_ablation` (``covercast generators ablate``)."""

    out: str
    """Output folder (models/, ablation.csv, ablation.md, config.json, grids/)."""
    variants: tuple[str, ...] = ()
    """Variant names to run (default: all of :func:`recipe_variants`)."""
    arch: str = "compact"
    """Model size of every variant: ``compact``, ``small`` or ``tiny``."""
    steps: int = 1500
    """Training steps of every variant."""
    batch_size: int = 32
    """Covers per step."""
    per_style_topic: int = 64
    """Training covers per style x topic (re-rendered every epoch with fresh covers)."""
    val_per_style_topic: int = 10
    """Validation covers per style x topic."""
    per_style: int = 60
    """Generated covers per style for the scores."""
    sampler: str = "ddim"
    """Sampler of the scores."""
    num_inference_steps: int = 20
    """Sampler steps."""
    eta: float = 1.0
    """DDIM eta."""
    guidance_scale: float = 2.0
    """Classifier-free guidance."""
    seed: int = 0
    """Seed of data, training and samples."""
    encoder: str = "committed"
    """Cover encoder folder (``committed``: the committed encoder)."""
    device: str = "auto"
    """``auto``, ``cpu`` or ``cuda``."""
    progress: bool = True
    """Progress bars."""
    workdir: str | None = None
    """Where the variants are trained (default ``OUT/models``; resumable)."""
    references: tuple[tuple[str, str], ...] = ()
    """``(name, folder)`` of saved diffusion models scored beside the variants without
    training (e.g. the previously committed checkpoint)."""


def _raw_weights_of(folder: Path, model: DiffusionCoverGenerator) -> DiffusionCoverGenerator:
    """``model`` with the raw (non-EMA) UNet weights of the training checkpoint in ``folder``.

    EMA does not change the raw weights' trajectory, so the raw weights of a run with EMA are
    exactly those of the same run without EMA: the ``no ema`` row costs no training.
    """
    from safetensors.torch import load_file

    meta = json.loads((folder / "checkpoint" / "checkpoint.json").read_text())
    flat = load_file(str(folder / "checkpoint" / meta["files"]["weights"]))
    raw = {k[len("unet."):]: v for k, v in flat.items() if k.startswith("unet.")}
    model.unet.load_state_dict(raw)
    return model.eval()


def _load_encoder(which: str, device: Any) -> CoverEncoder:
    from covercast.generators.banks import load_encoder

    return load_encoder(None if which == "committed" else which, device=device)


def _md_table(df: pd.DataFrame, first: str) -> list[str]:
    cols = [first, "fd", "kid", "precision", "recall", "style_accuracy", "min_style_accuracy",
            "topic_accuracy", "mode_collapse", "covers_per_s", "train_steps", "parameters"]
    cols = [c for c in cols if c in df]
    head = {"fd": "FD (encoder)", "kid": "KID", "style_accuracy": "style acc. %",
            "min_style_accuracy": "worst style acc. %", "topic_accuracy": "topic acc. %",
            "mode_collapse": "mode collapse %", "covers_per_s": "covers/s",
            "train_steps": "train steps"}

    def cell(c: str, v: Any) -> str:
        if isinstance(v, str):
            return v
        if v is None or (isinstance(v, float) and not np.isfinite(v)):
            return "-"
        if c in ("style_accuracy", "min_style_accuracy", "topic_accuracy", "mode_collapse"):
            return f"{100 * v:.1f}"
        if c == "kid":
            return f"{v:.3g}"
        if c in ("parameters", "train_steps"):
            return f"{int(v):,}"
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"

    return md_table([head.get(c, c) for c in cols],
                    ([cell(c, r[c]) for c in cols] for _, r in df.iterrows()))


def run_ablation(cfg: AblationConfig) -> pd.DataFrame:
    """Train and score every variant (resumably, into ``OUT/models/NAME``); write the table.

    A variant that ``OUT/ablation.csv`` already scores at the same number of steps is kept as
    it is (the command resumes; delete the CSV to score again).
    """
    from covercast.covers.procedural import save_grid

    out = Path(cfg.out)
    work = Path(cfg.workdir) if cfg.workdir else out / "models"
    dev = resolve_device(cfg.device)
    variants = recipe_variants(cfg.arch, steps=cfg.steps, batch_size=cfg.batch_size,
                               seed=cfg.seed)
    names = list(cfg.variants) or list(variants)
    unknown = [n for n in names if n not in variants]
    if unknown:
        raise ValueError(f"Unknown variant(s) {unknown}; choose from {list(variants)}.")
    enc = _load_encoder(cfg.encoder, dev)
    val = ValidationSet.build(enc, per_style_topic=cfg.val_per_style_topic, seed=cfg.seed)
    train_ds = None
    rows = []
    csv = out / "ablation.csv"
    done = pd.read_csv(csv) if csv.is_file() else None
    def data() -> Any:
        nonlocal train_ds
        if train_ds is None:
            train_ds = cover_dataset(cfg.per_style_topic, seed=cfg.seed)
        return train_ds

    def folder_of(name: str) -> str:
        return name.replace(" ", "_").replace("(", "").replace(")", "").replace(",", "")

    jobs = [(n, None) for n in names] + [(n, d) for n, d in cfg.references]
    for name, ref_dir in jobs:
        folder = folder_of(name)
        if done is not None and ref_dir is None and "train_steps" in done:
            prev = done[(done["variant"] == name) & (done["train_steps"] == cfg.steps)]
            if len(prev):       # scored by an earlier (interrupted or parallel) run: keep it
                rows.append(prev.iloc[-1].to_dict())
                continue
        if ref_dir is not None:
            model = DiffusionCoverGenerator.from_pretrained(ref_dir, device=dev)
            tj = Path(ref_dir) / "train.json"
            tinfo = json.loads(tj.read_text()) if tj.is_file() else {}
            info = {"steps": tinfo.get("steps", float("nan")),
                    "train_seconds": tinfo.get("train_seconds", float("nan"))}
        elif name == "no ema":
            # the raw weights of the `full` run: the same trajectory without the average
            spec = ModelSpec("full", "diffusion", "covers", *variants["full"])
            model, info = obtain_model(spec, workdir=work, dataset=data, device=dev,
                                       progress=cfg.progress)
            model = _raw_weights_of(work / "full", model)
        else:
            spec = ModelSpec(folder, "diffusion", "covers", *variants[name])
            model, info = obtain_model(spec, workdir=work, dataset=data, device=dev,
                                       progress=cfg.progress)
        row = score_generator(model, val, per_style=cfg.per_style, seed=cfg.seed,
                              sampler=cfg.sampler, num_inference_steps=cfg.num_inference_steps,
                              eta=cfg.eta, guidance_scale=cfg.guidance_scale)
        images, labels = row.pop("_images"), row.pop("_labels")
        k = min(12, cfg.per_style)
        idx = np.concatenate([np.flatnonzero(labels == s)[:k]
                              for s in range(len(DEFAULT_STYLES))])
        save_grid(images[idx].reshape(len(DEFAULT_STYLES), k, *images.shape[1:]),
                  out / "grids" / f"{folder}.png", title=f"ablation: {name}", scale=2)
        rows.append({"variant": name, **row, "train_steps": info["steps"],
                     "train_seconds": info["train_seconds"],
                     "parameters": parameter_count(model)})
        table = pd.DataFrame(rows)
        if done is not None:
            keep = done[~done["variant"].isin(table["variant"])]
            table = pd.concat([keep, table], ignore_index=True)
        atomic_write_csv(table, csv)
        if cfg.progress:
            print(f"{name}: FD {row['fd']:.1f}, style acc {100 * row['style_accuracy']:.1f} %, "
                  f"mode collapse {100 * row['mode_collapse']:.1f} %", flush=True)
    table = pd.read_csv(csv)
    order = {n: i for i, n in enumerate([*variants, *(n for n, _ in cfg.references)])}
    table = table.sort_values("variant", key=lambda s: s.map(order)).reset_index(drop=True)
    config = {"ablation": dataclasses.asdict(cfg), "device": str(dev), "torch": torch.__version__,
              "validation_seed": val.seed, "validation_covers": val.n,
              "variants": {n: {"model": dataclasses.asdict(variants[n][0]),
                               "train": dataclasses.asdict(variants[n][1])} for n in variants},
              "note": NOT_INCEPTION_NOTE}
    atomic_write_text(out / "config.json", json.dumps(config, indent=2, default=str))
    md = ["# Diffusion recipe ablation", "", f"> {NOT_INCEPTION_NOTE}", "",
          f"Every variant: `{cfg.arch}` UNet, {cfg.steps} steps x {cfg.batch_size} covers, "
          f"seed {cfg.seed}, device `{dev}`; scored on {val.n} validation covers (seed "
          f"{val.seed}) with {cfg.per_style} samples per style from {cfg.sampler} "
          f"({cfg.num_inference_steps} steps, eta {cfg.eta}, guidance {cfg.guidance_scale}). "
          "`full` = v-prediction + zero-terminal-SNR betas + EMA 0.999 + min-SNR-5 + fresh "
          "covers every epoch + style and topic conditioning; each other row changes one "
          "thing (see config.json). `no ema` is scored from the raw weights of the `full` run "
          "(EMA does not change the raw trajectory, so this is that run without EMA)."
          + (" Reference rows (not trained here): " + ", ".join(
              f"`{n}` = `{d}`" for n, d in cfg.references) + "." if cfg.references else ""),
          "", *_md_table(table, "variant"), "",
          "Per-style accuracies are in ablation.csv (`acc_<style>`); sample grids in grids/. "
          "covers/s and the training seconds in ablation.csv are wall-clock on the machine "
          "of the run (shared with other jobs: compare within one run only).",
          ""]
    atomic_write_text(out / "ablation.md", "\n".join(md))
    return table


#: The sampler grid of :func:`sweep_samplers`: (sampler, steps, eta, guidance).
DEFAULT_SAMPLER_GRID: tuple[tuple[str, int, float, float], ...] = (
    ("ddim", 20, 0.0, 2.0), ("ddim", 20, 1.0, 2.0), ("ddim", 10, 1.0, 2.0),
    ("ddim", 50, 1.0, 2.0), ("ddim", 20, 1.0, 1.0), ("ddim", 20, 1.0, 3.0),
    ("dpmsolver++", 10, 0.0, 2.0), ("dpmsolver++", 20, 0.0, 2.0),
)


def sweep_samplers(model_dir: str, out: str, *,
                   grid: Sequence[tuple[str, int, float, float]] = DEFAULT_SAMPLER_GRID,
                   per_style: int = 60, seed: int = 0, encoder: str = "committed",
                   val_per_style_topic: int = 10, device: str = "auto",
                   min_style_accuracy: float = 0.95) -> dict[str, Any]:
    """Score one model under every sampler of ``grid`` on the validation split.

    The chosen sampler has the lowest FD among those whose worst style accuracy is at least
    ``min_style_accuracy`` (all of them when none is). Writes ``sampler_sweep.csv``,
    ``sampler_sweep.md`` and ``chosen_sampler.json`` into ``out``; returns the table and the
    choice.
    """
    from covercast.generators.banks import committed_checkpoint

    dev = resolve_device(device)
    folder = committed_checkpoint("diffusion") if model_dir == "committed" else Path(model_dir)
    model = DiffusionCoverGenerator.from_pretrained(folder, device=dev)
    val = ValidationSet.build(_load_encoder(encoder, dev), per_style_topic=val_per_style_topic,
                              seed=seed)
    rows = []
    for sampler, steps, eta, guidance in grid:
        row = score_generator(model, val, per_style=per_style, seed=seed, sampler=sampler,
                              num_inference_steps=int(steps), eta=float(eta),
                              guidance_scale=float(guidance))
        row.pop("_images"), row.pop("_labels")
        rows.append({"sampler": f"{sampler} steps={steps} eta={eta:g} guidance={guidance:g}",
                     "name": sampler, "steps": int(steps), "eta": float(eta),
                     "guidance": float(guidance), **row})
        print(f"{rows[-1]['sampler']}: FD {row['fd']:.1f}, style acc "
              f"{100 * row['style_accuracy']:.1f} %, {row['covers_per_s']:.1f} covers/s",
              flush=True)
    table = pd.DataFrame(rows)
    ok = table[table["min_style_accuracy"] >= min_style_accuracy]
    pick = (ok if len(ok) else table).sort_values("fd").iloc[0]
    chosen = {"sampler": pick["name"], "num_inference_steps": int(pick["steps"]),
              "eta": float(pick["eta"]), "guidance_scale": float(pick["guidance"]),
              "validation_fd": float(pick["fd"]), "model": str(folder),
              "rule": f"lowest validation FD among samplers with every style's accuracy >= "
                      f"{min_style_accuracy:.0%}"}
    o = Path(out)
    atomic_write_csv(table, o / "sampler_sweep.csv")
    atomic_write_text(o / "chosen_sampler.json", json.dumps(chosen, indent=2))
    md = ["# Sampler sweep (validation split)", "", f"> {NOT_INCEPTION_NOTE}", "",
          f"Model `{folder}`; {per_style} covers per style per sampler, scored on {val.n} "
          f"validation covers (seed {val.seed}; the report's test covers use other seeds). "
          f"Chosen: **{pick['sampler']}** ({chosen['rule']}).", "",
          *_md_table(table.drop(columns=["name"]), "sampler"), ""]
    atomic_write_text(o / "sampler_sweep.md", "\n".join(md))
    return {"table": table, "chosen": chosen}

