"""Command-line subcommands of the cover generators.

:func:`add_subcommands` adds them to the ``covercast`` command (``covercast.experiments.cli``)::

    covercast generators train MODEL --out DIR ...    train diffusion, vae-iat, dcgan or encoder
    covercast generators evaluate --out DIR [--fast]  Table 1 and the MNIST-5k table, report
    covercast bank build --generator G --per-style K --out bank.npz [--checkpoint DIR]
    covercast bench generators                        covers/s, parameters, time per epoch

:func:`train_command` (``generators train``) writes ``DIR/checkpoint/`` (run it again to resume),
``DIR/model/`` (``from_pretrained``-ready), ``DIR/history.csv`` and ``DIR/config.json``.
:func:`cmd_bench_generators` is the handler of ``covercast bench generators``. The same
commands run without the main CLI as ``python -m covercast.experiments.generators_cli ...``. Torch and the
models are imported inside the handlers, so building the parser is instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from covercast._io import check_int

if TYPE_CHECKING:
    from covercast.generators.training import TrainResult

__all__ = ["add_subcommands", "train_command", "build_train_parser", "cmd_generators_train",
           "cmd_generators_evaluate",
           "cmd_bank_build", "cmd_bench_generators", "add_bench_generators_arguments",
           "build_parser", "main"]


def _key_values(items: Sequence[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ValueError(f"`{what}` takes NAME=VALUE, got {item!r} (e.g. "
                             f"{'diffusion=6000' if what == '--steps' else 'vae-iat=DIR'}).")
        if name in out:
            raise ValueError(f"`{what}` gives {name!r} twice.")
        out[name] = value
    return out


# ---------------------------------------------------------------------------------- training
_TRAIN_MODELS = ("diffusion", "vae-iat", "dcgan", "encoder")


def build_train_parser() -> argparse.ArgumentParser:
    """The argument parser of ``covercast generators train``."""
    p = argparse.ArgumentParser(
        prog="covercast generators train",
        description="Train a cover generator or the cover encoder, with a progress bar and "
                    "resumable checkpoints. Writes OUT/checkpoint/ (resumable: run the same "
                    "command again to continue), OUT/model/ (the trained model, "
                    "from_pretrained-ready), OUT/history.csv and OUT/config.json.")
    p.add_argument("model", choices=_TRAIN_MODELS, help="what to train")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--data", default="covers", choices=("covers", "mnist5k", "lfw", "digits"),
                   help="training images (default: procedural covers)")
    p.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    p.add_argument("--per-style-topic", type=int, default=64,
                   help="covers per style x topic for --data covers (default 64)")
    p.add_argument("--arch", default="small", choices=("small", "compact", "tiny"),
                   help="model size: the documented default ('small'), diffusion's lighter "
                        "'compact' (16/32/64 channels, no attention), or the test-sized one")
    p.add_argument("--steps", type=int, default=None,
                   help="training steps (VAE-IAT: phase-2 steps; default: the config's)")
    p.add_argument("--phase1-steps", type=int, default=None, help="VAE-IAT phase-1 steps")
    p.add_argument("--batch-size", type=int, default=None, help="images per step")
    p.add_argument("--lr", type=float, default=None, help="learning rate")
    p.add_argument("--seed", type=int, default=0, help="seed of data, init and training")
    p.add_argument("--decoder", default="lstm", choices=("lstm", "conv"),
                   help="VAE-IAT generator (default: the paper's row LSTM)")
    p.add_argument("--checkpoint-every", type=int, default=500,
                   help="steps between checkpoints (default 500)")
    p.add_argument("--no-resume", action="store_true",
                   help="start over even if OUT/checkpoint/ holds a run")
    p.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    d = p.add_argument_group("diffusion recipe (see `covercast generators ablate`)")
    d.add_argument("--prediction", choices=("v_prediction", "epsilon"), default=None,
                   help="what the UNet predicts (default v_prediction)")
    d.add_argument("--zero-snr", action=argparse.BooleanOptionalAction, default=None,
                   help="rescale the betas to zero terminal SNR (default off)")
    d.add_argument("--offset-noise", type=float, default=None, help="offset noise (default 0)")
    d.add_argument("--min-snr-gamma", type=float, default=None,
                   help="min-SNR loss weighting gamma (0: off; default the config's)")
    d.add_argument("--ema-decay", type=float, default=None, help="EMA decay (0: no EMA)")
    d.add_argument("--warmup-steps", type=int, default=None, help="learning-rate warm-up")
    d.add_argument("--topics", action=argparse.BooleanOptionalAction, default=None,
                   help="condition on the topic as well as the style (default on for covers)")
    d.add_argument("--fresh-covers", action=argparse.BooleanOptionalAction, default=None,
                   help="render fresh covers every epoch (default on for covers)")
    return p


def train_command(argv: Sequence[str] | None = None) -> TrainResult:
    """Run the training command on ``argv``; returns the :class:`TrainResult`.

    Bad arguments raise ``ValueError`` (or exit through argparse for unknown options) before
    any data is rendered or any step is taken.
    """
    import pandas as pd
    from torch import nn

    from covercast._io import atomic_write_csv, atomic_write_text
    from covercast.covers.attributes import DEFAULT_STYLES, DEFAULT_TOPICS
    from covercast.generators.data import load_dataset
    from covercast.generators.training import config_to_dict, resolve_device

    args = build_train_parser().parse_args(argv)
    device = resolve_device(args.device)
    out = Path(args.out)
    overrides: dict[str, Any] = {}
    if args.batch_size is not None:
        overrides["batch_size"] = check_int(args.batch_size, "--batch-size")
    if args.lr is not None:
        if not args.lr > 0:
            raise ValueError(f"`--lr` must be > 0, got {args.lr}.")
        overrides[("lr_phase2" if args.model == "vae-iat" else "lr")] = args.lr
    if args.steps is not None:
        overrides["phase2_steps" if args.model == "vae-iat" else "steps"] = \
            check_int(args.steps, "--steps", 0)
    if args.phase1_steps is not None:
        if args.model != "vae-iat":
            raise ValueError("`--phase1-steps` applies to vae-iat only.")
        overrides["phase1_steps"] = check_int(args.phase1_steps, "--phase1-steps", 0)
    if args.model == "encoder" and args.data != "covers":
        raise ValueError(f"The cover encoder is trained on --data covers, got {args.data!r}.")
    check_int(args.per_style_topic, "--per-style-topic")
    overrides["seed"] = check_int(args.seed, "--seed", 0)

    digits = tuple(str(d) for d in range(10))
    classes, channels = {"covers": (DEFAULT_STYLES, 3), "mnist5k": (digits, 1),
                         "lfw": (("face",), 1), "digits": (digits, 1)}[args.data]
    # configs first: a size or option the model cannot take fails before any data is made
    arch: dict[str, Any] = {"styles": classes, "image_size": args.size, "channels": channels}
    diffusion_only = {"prediction": args.prediction, "zero_snr": args.zero_snr,
                      "offset_noise": args.offset_noise, "min_snr_gamma": args.min_snr_gamma,
                      "ema_decay": args.ema_decay, "topics": args.topics,
                      "fresh_covers": args.fresh_covers}
    if args.model != "diffusion":
        given = [f"--{k.replace('_', '-')}" for k, v in diffusion_only.items() if v is not None]
        if given or args.arch == "compact":
            raise ValueError(f"{given or ['--arch compact']} apply to diffusion only.")
    if args.warmup_steps is not None:
        overrides["warmup_steps"] = check_int(args.warmup_steps, "--warmup-steps", 0)
    if args.model == "diffusion":
        from covercast.generators import diffusion as mod

        covers = args.data == "covers"
        if args.topics and not covers:
            raise ValueError(f"`--topics` needs --data covers (--data {args.data} has no "
                             "topics).")
        if args.fresh_covers and not covers:
            raise ValueError(f"`--fresh-covers` needs --data covers, got --data {args.data}.")
        if args.topics if args.topics is not None else covers:
            arch["topics"] = DEFAULT_TOPICS
        if args.prediction is not None:
            arch["prediction_type"] = args.prediction
        if args.zero_snr is not None:
            arch["rescale_betas_zero_snr"] = args.zero_snr
        overrides["fresh_covers"] = args.fresh_covers if args.fresh_covers is not None \
            else covers
        for k in ("offset_noise", "min_snr_gamma", "ema_decay"):
            if diffusion_only[k] is not None:
                overrides[k] = diffusion_only[k]
        cfg = getattr(mod.DiffusionConfig, args.arch)(**arch)
        model: nn.Module = mod.DiffusionCoverGenerator(cfg, seed=args.seed)
        tcfg: Any = mod.DiffusionTrainConfig(**overrides)
        fn: Callable[..., TrainResult] = mod.train_diffusion
    elif args.model == "vae-iat":
        from covercast.generators import vae_iat as mod_v

        cfg = (mod_v.VAEIATConfig.tiny if args.arch == "tiny" else mod_v.VAEIATConfig)(
            decoder=args.decoder, **arch)
        model = mod_v.VAEIAT(cfg, seed=args.seed)
        tcfg = mod_v.VAEIATTrainConfig(**overrides)
        fn = mod_v.train_vae_iat
    elif args.model == "dcgan":
        from covercast.generators import dcgan as mod_d

        cfg = (mod_d.DCGANConfig.tiny if args.arch == "tiny" else mod_d.DCGANConfig)(**arch)
        model = mod_d.DCGAN(cfg, seed=args.seed)
        tcfg = mod_d.DCGANTrainConfig(**overrides)
        fn = mod_d.train_dcgan
    else:
        from covercast.generators import encoder as mod_e

        arch["topics"] = DEFAULT_TOPICS
        cfg = (mod_e.CoverEncoderConfig.tiny if args.arch == "tiny"
               else mod_e.CoverEncoderConfig)(**arch)
        model = mod_e.CoverEncoder(cfg, seed=args.seed)
        tcfg = mod_e.EncoderTrainConfig(**overrides)
        fn = mod_e.train_cover_encoder

    ds = load_dataset(args.data, size=args.size, seed=args.seed,
                      per_style_topic=args.per_style_topic)
    run_config = {"model": args.model, "data": args.data, "size": args.size,
                  "per_style_topic": args.per_style_topic, "arch": args.arch,
                  "model_config": config_to_dict(cfg), "train_config": config_to_dict(tcfg),
                  "device": str(device)}
    atomic_write_text(out / "config.json", json.dumps(run_config, indent=2))
    import os
    import time

    import torch

    prev: dict[str, Any] = {}
    if (out / "train.json").is_file() and not args.no_resume:
        prev = json.loads((out / "train.json").read_text())
    t0, c0 = time.perf_counter(), time.process_time()
    result = fn(model, ds, tcfg, checkpoint_dir=out / "checkpoint",
                checkpoint_every=args.checkpoint_every, resume=not args.no_resume,
                progress=not args.quiet, device=device)
    spent, cpu = time.perf_counter() - t0, time.process_time() - c0
    trained = result.steps_done > result.resumed_from
    seconds = (prev.get("train_seconds", 0.0) if result.resumed_from else 0.0) + \
        (spent if trained else 0.0)
    cpu_seconds = (prev.get("cpu_seconds", 0.0) if result.resumed_from else 0.0) + \
        (cpu if trained else 0.0)
    model.save_pretrained(out / "model")  # type: ignore[operator]
    info = {"name": args.model, "steps": result.steps_done, "train_seconds": round(seconds, 1),
            "cpu_seconds": round(cpu_seconds, 1),
            "device": str(device), "torch_threads": torch.get_num_threads(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "command": "covercast generators train " + " ".join(
                list(argv) if argv is not None else sys.argv[1:]),
            "model_config": config_to_dict(cfg), "train_config": config_to_dict(tcfg)}
    atomic_write_text(out / "train.json", json.dumps(info, indent=2))
    atomic_write_text(out / "model" / "train.json", json.dumps(info, indent=2))
    atomic_write_csv(pd.DataFrame(result.history), out / "history.csv")
    return result


# ---------------------------------------------------------------------------------- handlers
def cmd_generators_train(args: argparse.Namespace) -> int:
    """``covercast generators train ...``: :func:`train_command` (``--help`` lists its
    options)."""
    result = train_command(list(args.train_args))
    print(f"trained {result.steps_done} steps (resumed from {result.resumed_from})"
          + (", stopped early" if result.stopped_early else ""))
    return 0


def cmd_generators_evaluate(args: argparse.Namespace) -> int:
    """``covercast generators evaluate``: train or load, sample, score, write the report."""
    from covercast.experiments.generator_report import EvalConfig, evaluate_generators

    opts: dict[str, Any] = {"device": args.device, "progress": not args.quiet,
                            "mnist": not args.no_mnist, "size": args.size, "seed": args.seed}
    if args.models:
        opts["models"] = tuple(args.models)
    for name in ("train_per_style_topic", "ref_per_style_topic", "samples_per_style",
                 "mnist_samples_per_class", "guidance_scale", "scale",
                 "workdir", "preset", "eta", "sampler", "img_dir"):
        value = getattr(args, name)
        if value is not None:
            opts[name] = value
    if args.num_inference_steps is not None:
        opts["ddim_steps"] = args.num_inference_steps
    if args.document_committed:
        opts["document_committed"] = True
    steps = _key_values(args.steps, "--steps")
    ckpts = _key_values(args.checkpoint, "--checkpoint")
    if args.committed:
        for name in ("encoder", "diffusion", "vae-iat", "dcgan"):
            ckpts.setdefault(name, "committed")
    opts["steps"] = tuple(steps.items())
    opts["checkpoints"] = tuple(ckpts.items())
    cfg = EvalConfig.fast(args.out, **opts) if args.fast else EvalConfig(out=args.out, **opts)
    result = evaluate_generators(cfg)
    res = result["results"]
    cols = [c for c in ("table", "model", "frechet_distance", "kid", "style_accuracy",
                        "mode_collapse_rate", "covers_per_s") if c in res]
    print(res[cols].to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print("(Frechet distance and KID in cover-encoder features: NOT Inception-FID numbers)")
    print(f"report: {result['report']}")
    return 0


def cmd_generators_ablate(args: argparse.Namespace) -> int:
    """``covercast generators ablate``: the diffusion recipe ablation (validation split)."""
    from covercast.experiments.generator_ablation import AblationConfig, run_ablation

    cfg = AblationConfig(out=args.out, variants=tuple(args.variants or ()), arch=args.arch,
                         steps=args.train_steps, batch_size=args.batch_size,
                         per_style=args.per_style, sampler=args.sampler,
                         num_inference_steps=args.num_inference_steps, eta=args.eta,
                         guidance_scale=args.guidance_scale, seed=args.seed,
                         device=args.device, progress=not args.quiet,
                         references=tuple(_key_values(args.reference, "--reference").items()),
                         workdir=args.workdir)
    table = run_ablation(cfg)
    cols = [c for c in ("variant", "fd", "kid", "precision", "recall", "style_accuracy",
                        "min_style_accuracy", "mode_collapse", "covers_per_s",
                        "train_seconds") if c in table]
    print(table[cols].to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print("(FD and KID in cover-encoder features: NOT Inception-FID numbers)")
    print(f"table: {Path(args.out) / 'ablation.md'}")
    return 0


def cmd_generators_sampler_sweep(args: argparse.Namespace) -> int:
    """``covercast generators sampler-sweep``: choose a diffusion sampler on validation."""
    from covercast.experiments.generator_ablation import sweep_samplers

    grid = None
    if args.configs:
        grid = []
        for item in args.configs:
            parts = item.split(":")
            try:
                name, steps, eta, guidance = parts
                grid.append((name, int(steps), float(eta), float(guidance)))
            except ValueError as e:
                raise ValueError(f"`--configs` takes SAMPLER:STEPS:ETA:GUIDANCE, e.g. "
                                 f"ddim:20:1:2 or dpmsolver++:10:0:2; got {item!r}.") from e
    res = sweep_samplers(args.model, args.out, per_style=args.per_style, seed=args.seed,
                         device=args.device, **({"grid": tuple(grid)} if grid else {}))
    table = res["table"]
    cols = ["sampler", "fd", "kid", "precision", "recall", "style_accuracy",
            "min_style_accuracy", "mode_collapse", "covers_per_s"]
    print(table[cols].to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    print(f"chosen: {json.dumps(res['chosen'])}")
    return 0


def _add_sampling_arguments(sp: argparse.ArgumentParser, *, defaults: bool) -> None:
    """``--sampler``, ``--num-inference-steps`` (alias ``--ddim-steps``), ``--eta`` and
    ``--guidance-scale`` (``defaults=False``: None, i.e. the model's own sampling options)."""
    sp.add_argument("--sampler", choices=["ddim", "dpmsolver++"],
                    default="ddim" if defaults else None, help="diffusion sampler (default: the model's own)")
    sp.add_argument("--num-inference-steps", "--ddim-steps", dest="num_inference_steps",
                    type=int, default=20 if defaults else None, help="diffusion sampler steps (default: the model's own)")
    sp.add_argument("--eta", type=float, default=1.0 if defaults else None,
                    help="DDIM eta, 0 deterministic, 1 DDPM-like (default: the model's own)")
    sp.add_argument("--guidance-scale", type=float, default=2.0 if defaults else None,
                    help="classifier-free guidance, 1: none (default: the model's own)")


def cmd_bank_build(args: argparse.Namespace) -> int:
    """``covercast bank build``: a cover bank from a generator, saved as ``.npz``."""
    from covercast.generators.banks import build_bank

    out = Path(args.out)
    if out.suffix != ".npz":
        raise ValueError(f"`--out` must end in .npz (a CoverBank file), got {out.name!r}.")
    if args.grid is not None and Path(args.grid).suffix.lower() != ".png":
        raise ValueError(f"`--grid` must end in .png, got {args.grid!r}.")
    sample_kwargs: dict[str, Any] = {
        k: getattr(args, k) for k in ("num_inference_steps", "guidance_scale", "eta", "sampler")
        if getattr(args, k) is not None}
    if sample_kwargs and args.generator != "diffusion":
        raise ValueError("`--sampler`, `--num-inference-steps`, `--eta` and `--guidance-scale` "
                         "apply to --generator diffusion only.")
    if args.encoder is not None and args.generator == "procedural":
        raise ValueError("`--encoder` applies to learned generators only; procedural covers "
                         "keep their exact style labels.")
    bank = build_bank(args.generator, args.per_style, checkpoint=args.checkpoint,
                      encoder=args.encoder, size=args.size, seed=args.seed,
                      quality=args.quality, device=args.device, batch_size=args.batch_size,
                      sample_kwargs=sample_kwargs, progress=not args.quiet)
    bank.save(out)
    print(f"wrote {len(bank)} {bank.generator} covers ({bank.n_styles} styles x "
          f"{args.per_style}, {bank.image_size}px, mean quality {bank.quality.mean():.3f}) "
          f"to {out}")
    if args.grid is not None:
        from covercast.covers.procedural import save_grid

        save_grid(bank, args.grid, per_cell=2, title=f"{bank.generator} bank")
        print(f"contact sheet: {args.grid}")
    return 0


def cmd_bench_generators(args: argparse.Namespace) -> int:
    """``covercast bench generators``: speed of every generator, printed with the targets."""
    from covercast.experiments.bench_generators import bench_generators, format_table

    table = bench_generators(devices=getattr(args, "devices", None),
                             generators=getattr(args, "generators", None),
                             size=getattr(args, "size", 32),
                             covers=getattr(args, "covers", None),
                             seed=getattr(args, "seed", 0),
                             repeats=getattr(args, "repeats", 3),
                             out=getattr(args, "out", None),
                             progress=not getattr(args, "quiet", False))
    print(format_table(table))
    return 0


# ---------------------------------------------------------------------------------- parsers
def _add_evaluate_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--out", required=True, help="output folder (results.csv, config.json, "
                    "report.md, grids/, and models/ when training)")
    sp.add_argument("--fast", action="store_true",
                    help="tiny models, a few steps and samples (smoke tests)")
    sp.add_argument("--preset", choices=["standard", "fast"], default=None,
                    help="model sizes and training steps (default: standard; --fast: fast)")
    sp.add_argument("--models", nargs="+", choices=["diffusion", "vae-iat", "dcgan"],
                    help="generators of the covers table (default: all three)")
    sp.add_argument("--no-mnist", action="store_true", help="skip the MNIST-5k table")
    sp.add_argument("--size", type=int, default=32, choices=[32, 64], help="cover side (px)")
    sp.add_argument("--seed", type=int, default=0, help="master seed")
    sp.add_argument("--train-per-style-topic", type=int, default=None,
                    help="training covers per style x topic (default 64)")
    sp.add_argument("--ref-per-style-topic", type=int, default=None,
                    help="held-out real covers per style x topic (default 20)")
    sp.add_argument("--samples-per-style", type=int, default=None,
                    help="generated covers per style (default 120)")
    sp.add_argument("--mnist-samples-per-class", type=int, default=None,
                    help="generated digits per class (default 250)")
    _add_sampling_arguments(sp, defaults=False)
    sp.add_argument("--img-dir", default=None,
                    help="also write the real-beside-generator grids here, e.g. docs/img "
                         "(default: only under OUT)")
    sp.add_argument("--document-committed", action="store_true",
                    help="write each committed generator's accuracy into its folder "
                         "(evaluation.json; the committed-checkpoint test reads it)")
    sp.add_argument("--steps", action="append", metavar="NAME=N",
                    help="training steps of one model, e.g. diffusion=6000 or "
                         "vae-iat=3000+2000 (phase 1 + phase 2); repeatable (default: the preset's)")
    sp.add_argument("--scale", type=float, default=None,
                    help="multiply every preset step count, e.g. 10 on a GPU (default 1)")
    sp.add_argument("--checkpoint", action="append", metavar="NAME=DIR",
                    help="load model NAME from a save_pretrained folder (or 'committed') "
                         "instead of training it; repeatable (default: train every model)")
    sp.add_argument("--committed", action="store_true",
                    help="use the committed checkpoints for encoder, diffusion, vae-iat, dcgan")
    sp.add_argument("--workdir", default=None,
                    help="where models are trained (default OUT/models; resumable)")
    sp.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda")


def _add_bank_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--generator", required=True,
                    choices=["procedural", "diffusion", "vae-iat", "dcgan"], help="which generator")
    sp.add_argument("--per-style", type=int, required=True, help="covers per style")
    sp.add_argument("--out", required=True, help="output bank (.npz)")
    sp.add_argument("--checkpoint", default=None,
                    help="model folder (save_pretrained); default: the committed checkpoint")
    sp.add_argument("--encoder", default=None,
                    help="cover encoder folder; default: the committed encoder")
    sp.add_argument("--quality", default="craft", choices=["craft", "confidence", "constant"],
                    help="quality of generated covers (default: encoder-estimated craft)")
    sp.add_argument("--size", type=int, default=32, help="procedural cover side (px)")
    sp.add_argument("--seed", type=int, default=0, help="master seed")
    sp.add_argument("--batch-size", type=int, default=None,
                    help="covers generated at once (default: all of a style)")
    _add_sampling_arguments(sp, defaults=False)
    sp.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda")
    sp.add_argument("--grid", default=None,
                    help="also write a PNG contact sheet here (default: none)")


def add_bench_generators_arguments(sp: argparse.ArgumentParser, *,
                                   exclude: Sequence[str] = ()) -> None:
    """Options of ``bench generators``, each prefixed "generators:" in the help.

    All are optional (the handler reads them with defaults). ``exclude`` names options to
    leave out because a shared ``bench`` parser already has them, e.g.
    ``exclude=("--seed", "--repeats")``.
    """
    options: list[tuple[str, dict[str, Any]]] = [
        ("--devices", dict(nargs="+", default=None,
                           help="devices to time (default: cpu, and cuda when available)")),
        ("--generators", dict(nargs="+", default=None,
                              choices=["procedural", "vae-iat", "vae-iat-conv", "dcgan",
                                       "diffusion", "diffusion-default"],
                              help="what to time (default: all)")),
        ("--size", dict(type=int, default=32, help="cover side (px)")),
        ("--covers", dict(type=int, default=None,
                          help="covers per timing (default: a few seconds' worth each)")),
        ("--repeats", dict(type=int, default=3, help="timings per figure (the best is kept)")),
        ("--out", dict(default=None, help="also write the table as CSV")),
        ("--seed", dict(type=int, default=0, help="seed of the weights and the noise")),
    ]
    unknown = sorted(set(exclude) - {name for name, _ in options})
    if unknown:
        raise ValueError(f"Cannot exclude {unknown}; the options are "
                         f"{[name for name, _ in options]}.")
    for name, kw in options:
        if name not in exclude:
            kw["help"] = "generators: " + kw["help"]
            sp.add_argument(name, **kw)


def add_subcommands(subparsers: Any, *, add_quiet: bool = True) -> None:
    """Add ``generators`` (``train``, ``evaluate``) and ``bank`` (``build``) to a subparsers
    object, each with ``func`` set to its handler.

    The main CLI calls ``args.func(args)``; a handler returns the exit status.
    """
    def quiet(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        if add_quiet:
            sp.add_argument("--quiet", action="store_true", help="no progress bars")
        return sp

    gen = subparsers.add_parser("generators", help="train and evaluate the cover generators",
                                description="Train and evaluate the cover generators.")
    gsub = gen.add_subparsers(dest="generators_command", metavar="SUBCOMMAND", required=True)
    tr = gsub.add_parser("train", add_help=False,
                         help="train diffusion, vae-iat, dcgan or the encoder (resumable); "
                              "`covercast generators train --help` for options",
                         description="Forwarded to train_command.")
    tr.add_argument("train_args", nargs=argparse.REMAINDER,
                    help="options of the training command (`covercast generators train --help`)")
    tr.set_defaults(func=cmd_generators_train)
    ev = gsub.add_parser("evaluate", help="the generation-metrics report (Table 1 and MNIST-5k)",
                         description="Train (resumably) or load the generators, sample them "
                                     "and write results.csv, config.json, report.md and "
                                     "sample grids. Distances are in cover-encoder features, "
                                     "NOT Inception-FID numbers.")
    _add_evaluate_arguments(quiet(ev))
    ev.set_defaults(func=cmd_generators_evaluate)
    ab = gsub.add_parser("ablate", help="the diffusion recipe ablation on a validation split",
                         description="Train one diffusion model per recipe variant for the "
                                     "same steps and score each on validation covers "
                                     "(ablation.csv, ablation.md, grids/). Distances are in "
                                     "cover-encoder features, NOT Inception-FID numbers.")
    ab.add_argument("--out", required=True, help="output folder (resumable)")
    ab.add_argument("--variants", nargs="+", default=None, help="variant names (default all)")
    ab.add_argument("--arch", default="compact", choices=["compact", "small", "tiny"],
                    help="UNet size of every variant")
    ab.add_argument("--train-steps", type=int, default=1500, help="steps of every variant")
    ab.add_argument("--batch-size", type=int, default=32, help="training batch size")
    ab.add_argument("--per-style", type=int, default=60, help="samples per style scored")
    ab.add_argument("--seed", type=int, default=0, help="master seed")
    ab.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda")
    ab.add_argument("--workdir", default=None,
                    help="where the variants are trained (default OUT/models; resumable)")
    ab.add_argument("--reference", action="append", metavar="NAME=DIR",
                    help="also score a saved diffusion model (not trained here); repeatable "
                         "(default: none)")
    _add_sampling_arguments(ab, defaults=True)
    ab.set_defaults(func=cmd_generators_ablate)
    quiet(ab)
    sw = gsub.add_parser("sampler-sweep", help="choose the diffusion sampler on validation",
                         description="Score a diffusion model under DDIM (eta 0 and 1; 10, "
                                     "20, 50 steps; guidance 1/2/3) and DPM-Solver++ (10, 20 "
                                     "steps) on validation covers; writes sampler_sweep.csv/.md "
                                     "and chosen_sampler.json.")
    sw.add_argument("--model", default="committed", help="model folder (default: committed)")
    sw.add_argument("--out", required=True, help="output folder")
    sw.add_argument("--per-style", type=int, default=60, help="samples per style scored")
    sw.add_argument("--configs", nargs="+", default=None, metavar="SAMPLER:STEPS:ETA:GUIDANCE",
                    help="samplers to score (default: the built-in grid), e.g. ddim:20:1:2")
    sw.add_argument("--seed", type=int, default=0, help="master seed")
    sw.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda")
    sw.set_defaults(func=cmd_generators_sampler_sweep)
    quiet(sw)

    bank = subparsers.add_parser("bank", help="cover banks", description="Cover banks.")
    bsub = bank.add_subparsers(dest="bank_command", metavar="SUBCOMMAND", required=True)
    bb = bsub.add_parser("build", help="build a cover bank from a generator",
                         description="Build a cover bank (.npz) from a generator, on cuda when "
                                     "present; generated covers get style probabilities and "
                                     "quality from the trained cover encoder.")
    _add_bank_arguments(quiet(bb))
    bb.set_defaults(func=cmd_bank_build)


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser with the generator subcommands and ``bench generators``."""
    p = argparse.ArgumentParser(prog="python -m covercast.experiments.generators_cli",
                                description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_subcommands(sub)
    bench = sub.add_parser("bench", help="speed benchmarks")
    bench.add_argument("what", choices=["generators"])
    bench.add_argument("--quiet", action="store_true", help="no progress bars")
    add_bench_generators_arguments(bench)
    bench.set_defaults(func=cmd_bench_generators)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the stand-alone command; bad input exits with status 2 and a one-line error."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"covercast {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
