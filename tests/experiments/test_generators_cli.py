"""The generator command lines: generators train/evaluate, bank build, bench generators."""

import argparse

import numpy as np
import pandas as pd
import pytest

from covercast.covers.bank import CoverBank
from covercast.experiments import generators_cli as cli

torch = pytest.importorskip("torch")


def test_add_subcommands_plugs_into_any_parser():
    p = argparse.ArgumentParser(prog="covercast")
    sub = p.add_subparsers(dest="command", required=True)
    cli.add_subcommands(sub)
    args = p.parse_args(["bank", "build", "--generator", "vae-iat", "--per-style", "3",
                         "--out", "b.npz"])
    assert args.func is cli.cmd_bank_build and args.per_style == 3 and not args.quiet
    args = p.parse_args(["generators", "evaluate", "--out", "x", "--fast", "--steps",
                         "dcgan=5", "--checkpoint", "vae-iat=committed"])
    assert args.func is cli.cmd_generators_evaluate and args.steps == ["dcgan=5"]
    args = p.parse_args(["generators", "train", "encoder", "--out", "d", "--arch", "tiny"])
    assert args.func is cli.cmd_generators_train
    assert args.train_args == ["encoder", "--out", "d", "--arch", "tiny"]


def test_bench_arguments_fit_a_shared_bench_parser():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["population", "generators"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3)
    cli.add_bench_generators_arguments(p, exclude=("--seed", "--repeats"))
    args = p.parse_args(["generators", "--generators", "vae-iat", "--repeats", "2"])
    assert args.generators == ["vae-iat"] and args.repeats == 2 and args.devices is None
    with pytest.raises(ValueError, match="Cannot exclude"):
        cli.add_bench_generators_arguments(argparse.ArgumentParser(), exclude=("--n",))


def test_bank_build_procedural_round_trips(tmp_path, capsys):
    out = tmp_path / "bank.npz"
    rc = cli.main(["bank", "build", "--generator", "procedural", "--per-style", "6", "--out",
                   str(out), "--grid", str(tmp_path / "sheet.png"), "--quiet"])
    assert rc == 0 and "wrote 30 procedural covers" in capsys.readouterr().out
    bank = CoverBank.load(out)
    assert len(bank) == 30 and (tmp_path / "sheet.png").stat().st_size > 0


def test_bank_build_from_a_tiny_checkpoint(tmp_path):
    from covercast.generators.encoder import CoverEncoder, CoverEncoderConfig
    from covercast.generators.vae_iat import VAEIAT, VAEIATConfig

    VAEIAT(VAEIATConfig.tiny(), seed=0).save_pretrained(tmp_path / "vae")
    CoverEncoder(CoverEncoderConfig.tiny(), seed=0).save_pretrained(tmp_path / "enc")
    out = tmp_path / "gen.npz"
    rc = cli.main(["bank", "build", "--generator", "vae-iat", "--per-style", "3", "--out",
                   str(out), "--checkpoint", str(tmp_path / "vae"), "--encoder",
                   str(tmp_path / "enc"), "--device", "cpu", "--quality", "confidence",
                   "--quiet"])
    assert rc == 0
    bank = CoverBank.load(out)
    assert len(bank) == 15 and bank.generator == "vae-iat"
    assert bank.meta["quality"] == "confidence"


def test_bank_build_errors_exit_with_status_2(tmp_path, capsys):
    rc = cli.main(["bank", "build", "--generator", "vae-iat", "--per-style", "3", "--out",
                   str(tmp_path / "b.npz"), "--checkpoint", str(tmp_path / "missing")])
    err = capsys.readouterr().err
    assert rc == 2 and "does not exist" in err
    rc = cli.main(["bank", "build", "--generator", "procedural", "--per-style", "3", "--out",
                   str(tmp_path / "b.txt")])
    assert rc == 2 and "must end in .npz" in capsys.readouterr().err
    rc = cli.main(["bank", "build", "--generator", "procedural", "--per-style", "3", "--out",
                   str(tmp_path / "b.npz"), "--ddim-steps", "5"])
    assert rc == 2 and "diffusion only" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        cli.main(["bank", "build", "--generator", "gan", "--per-style", "3", "--out", "x.npz"])
    assert e.value.code == 2
    assert not (tmp_path / "b.npz").exists()


def test_generators_evaluate_fast_smoke(tmp_path, capsys):
    out = tmp_path / "ev"
    rc = cli.main(["generators", "evaluate", "--out", str(out), "--fast", "--no-mnist",
                   "--models", "vae-iat", "--quiet", "--device", "cpu", "--steps",
                   "vae-iat=3+1"])
    text = capsys.readouterr().out
    assert rc == 0 and "NOT Inception-FID" in text and "report:" in text
    res = pd.read_csv(out / "results.csv")
    assert list(res["model"]) == ["real covers (held-out)", "vae-iat"]
    assert int(res.loc[1, "train_steps"]) == 4
    assert (out / "report.md").is_file() and (out / "grids" / "covers_vae-iat.png").is_file()
    rc = cli.main(["generators", "evaluate", "--out", str(out), "--fast", "--steps",
                   "gan=3"])
    assert rc == 2 and "unknown model" in capsys.readouterr().err
    rc = cli.main(["generators", "evaluate", "--out", str(out), "--fast", "--steps", "dcgan"])
    assert rc == 2 and "NAME=VALUE" in capsys.readouterr().err


def test_generators_train_forwards_to_the_training_command(tmp_path, capsys):
    rc = cli.main(["generators", "train", "encoder", "--out", str(tmp_path / "enc"), "--arch",
                   "tiny", "--steps", "2", "--per-style-topic", "1", "--batch-size", "8",
                   "--quiet", "--device", "cpu"])
    assert rc == 0 and "trained 2 steps" in capsys.readouterr().out
    assert (tmp_path / "enc" / "model" / "covercast_model.json").is_file()


def test_bench_generators_table(tmp_path):
    from covercast.experiments.bench_generators import bench_generators, format_table

    table = bench_generators(["cpu"], covers=2, repeats=1, train_steps=1,
                             generators=["procedural", "vae-iat", "dcgan", "diffusion"],
                             out=tmp_path / "bench.csv", progress=False)
    assert set(table["generator"]) >= {"procedural", "vae-iat", "dcgan",
                                       "diffusion (20 DDIM, guided)"}
    assert (table["covers_per_s"] > 0).all()
    learned = table[table["generator"] != "procedural"]
    assert (learned["parameters"] > 0).all() and np.isfinite(learned["epoch_seconds"]).all()
    assert set(learned["batch_size"]) == {1, 256}
    vae = table[(table["generator"] == "vae-iat") & (table["batch_size"] == 256)].iloc[0]
    assert vae["target_covers_per_s"] == 1000 and vae["ratio"] == pytest.approx(
        vae["covers_per_s"] / 1000)
    text = format_table(table)
    assert "covers/s" in text and "1,000" in text
    assert pd.read_csv(tmp_path / "bench.csv").shape[0] == len(table)
    with pytest.raises(ValueError, match="size"):
        bench_generators(["cpu"], size=48)
    with pytest.raises(ValueError, match="to benchmark"):
        bench_generators(["cpu"], generators=["gan"])
