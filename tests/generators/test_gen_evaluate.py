"""Generation metrics, the plain VAE, the model zoo and the evaluation report (--fast)."""

import json

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from covercast.experiments import generator_report as report  # noqa: E402
from covercast.generators import evaluate as ev  # noqa: E402
from covercast.generators.data import cover_dataset  # noqa: E402
from covercast.generators.encoder import CoverEncoder, CoverEncoderConfig  # noqa: E402
from covercast.generators.vae_iat import VAEIATConfig, VAEIATTrainConfig, train_vae_iat  # noqa: E402


# ------------------------------------------------------------------------------- Frechet
def test_frechet_distance_zero_for_identical_sets_and_mean_shift_adds_squared_norm():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 6))
    assert ev.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    shift = np.array([3.0, 0, 0, 0, 0, -4.0])
    # same covariance, mean moved by `shift`: the distance is exactly |shift|^2
    assert ev.frechet_distance(a, a + shift) == pytest.approx(25.0, rel=1e-9)


def test_frechet_distance_matches_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(20_000, 3)) * np.array([1.0, 2.0, 0.5])
    b = rng.normal(size=(20_000, 3)) * np.array([2.0, 2.0, 1.5])
    # tr(S1 + S2 - 2 sqrt(S1 S2)) = sum (s1 - s2)^2 for diagonal covariances
    expected = (1 - 2) ** 2 + (2 - 2) ** 2 + (0.5 - 1.5) ** 2
    assert ev.frechet_distance(a, b) == pytest.approx(expected, abs=0.1)


def test_frechet_distance_equals_torchmetrics_fid_with_the_encoder_feature_module():
    fid_mod = pytest.importorskip("torchmetrics.image.fid")
    enc = CoverEncoder(CoverEncoderConfig.tiny(), seed=0).eval()
    real = cover_dataset(2, seed=0).images
    fake = cover_dataset(2, seed=5).images
    metric = fid_mod.FrechetInceptionDistance(feature=enc.feature_extractor(), normalize=False)
    metric.update(torch.from_numpy(real).permute(0, 3, 1, 2), real=True)
    metric.update(torch.from_numpy(fake).permute(0, 3, 1, 2), real=False)
    ours = ev.frechet_distance(enc.features(real), enc.features(fake))
    assert ours == pytest.approx(float(metric.compute()), rel=1e-3, abs=1e-6)


def test_metric_inputs_are_checked():
    with pytest.raises(ValueError, match="n >= 2"):
        ev.frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="same encoder"):
        ev.frechet_distance(np.zeros((4, 3)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="NaN"):
        ev.frechet_distance(np.full((4, 3), np.nan), np.zeros((5, 3)))


# ------------------------------------------------------------------------------- KID, P/R
def test_kid_is_near_zero_for_one_distribution_positive_for_two_and_reproducible():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    c = rng.normal(loc=1.0, size=(300, 8))
    same = ev.kernel_distance(a, b, rng=np.random.default_rng(0), subsets=20, subset_size=100)
    diff = ev.kernel_distance(a, c, rng=np.random.default_rng(0), subsets=20, subset_size=100)
    assert abs(same[0]) < 3 * same[1] + 0.02
    assert diff[0] > 10 * abs(same[0]) and diff[0] > 0.1
    again = ev.kernel_distance(a, c, rng=np.random.default_rng(0), subsets=20, subset_size=100)
    assert again == diff


class _Pool(torch.nn.Module):
    """Features of order 1: the 2x2 average-pooled channels of uint8 images."""

    def forward(self, imgs):
        return torch.nn.functional.adaptive_avg_pool2d(imgs.double() / 255.0, 2).flatten(1)


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")
def test_kid_equals_torchmetrics_on_one_full_subset():
    kid_mod = pytest.importorskip("torchmetrics.image.kid")
    real = cover_dataset(1, seed=0).images
    fake = cover_dataset(1, seed=3).images[::-1, ::-1]          # flipped: another distribution
    metric = kid_mod.KernelInceptionDistance(feature=_Pool(), subsets=1,
                                             subset_size=len(real), normalize=False)
    t_real = torch.from_numpy(real).permute(0, 3, 1, 2)
    t_fake = torch.from_numpy(np.ascontiguousarray(fake)).permute(0, 3, 1, 2)
    metric.update(t_real, real=True)
    metric.update(t_fake, real=False)
    ours, _ = ev.kernel_distance(_Pool()(t_real).numpy(), _Pool()(t_fake).numpy(),
                                 rng=np.random.default_rng(0), subsets=1,
                                 subset_size=len(real))
    theirs = float(metric.compute()[0])
    assert abs(theirs) > 1e-3 and ours == pytest.approx(theirs, rel=1e-6)


def test_kid_refuses_bad_subsets():
    a = np.zeros((10, 2))
    with pytest.raises(ValueError, match="subset_size"):
        ev.kernel_distance(a, a, rng=np.random.default_rng(0), subset_size=11)
    with pytest.raises(ValueError, match="Generator"):
        ev.kernel_distance(a, a, rng=0)


def test_precision_recall_bounds():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(200, 4))
    assert ev.precision_recall(a, a.copy(), k=3) == (1.0, 1.0)
    far = a + 100.0
    assert ev.precision_recall(a, far, k=3) == (0.0, 0.0)
    # a generator covering only half of the real data: high precision, low recall
    half = a[a[:, 0] > 0]
    p, r = ev.precision_recall(a, half, k=3)
    assert p == 1.0 and r < 0.8
    with pytest.raises(ValueError, match="`k`"):
        ev.precision_recall(a, half, k=0)


# ------------------------------------------------------------------------------- labels
def test_style_accuracy_and_mode_collapse():
    probs = np.eye(3)[[0, 1, 2, 2]]
    assert ev.style_accuracy(probs, np.array([0, 1, 2, 0])) == 0.75
    # real covers occupy all 3 x 2 modes evenly; the generator covers only style 0 and 1
    ref_s, ref_t = np.repeat(np.arange(3), 20), np.tile(np.arange(2), 30)
    gen_s, gen_t = np.repeat(np.arange(2), 30), np.tile(np.arange(2), 30)
    mc = ev.mode_collapse(gen_s, gen_t, ref_s, ref_t, 3, 2)
    assert mc["modes"] == 6 and mc["collapsed"] == 2 and mc["rate"] == pytest.approx(1 / 3)
    assert mc["empty_rate"] == pytest.approx(1 / 3)
    assert mc["counts"].tolist() == [[15, 15], [15, 15], [0, 0]]
    # a trickle into the third style: not empty, but still collapsed below 10 % of its share
    gen_s2 = np.concatenate([gen_s, [2]])
    gen_t2 = np.concatenate([gen_t, [0]])
    mc2 = ev.mode_collapse(gen_s2, gen_t2, ref_s, ref_t, 3, 2)
    assert mc2["rate"] == pytest.approx(1 / 3) and mc2["empty_rate"] == pytest.approx(1 / 6)
    same = ev.mode_collapse(ref_s, ref_t, ref_s, ref_t, 3, 2)
    assert same["rate"] == 0.0
    with pytest.raises(ValueError, match="out of range"):
        ev.mode_collapse(np.array([3]), np.array([0]), ref_s, ref_t, 3, 2)
    with pytest.raises(ValueError, match="min_share"):
        ev.mode_collapse(gen_s, gen_t, ref_s, ref_t, 3, 2, min_share=0)


# ------------------------------------------------------------------------------- plain VAE
def test_plain_vae_has_only_the_cnn_branch_trains_and_round_trips(tmp_path):
    cfg = VAEIATConfig.tiny(decoder="conv")
    model = report.PlainVAE(cfg, seed=0)
    names = {n for n, _ in model.named_parameters()}
    assert not any("row_lstm" in n for n in names)
    assert isinstance(model.encoder, report.CNNOnlyEncoder)
    data = cover_dataset(2, seed=0)
    res = train_vae_iat(model, data, VAEIATTrainConfig(phase1_steps=12, phase2_steps=0,
                                                        batch_size=16, warmup_steps=0,
                                                        kl_warmup_steps=0, lr=3e-3),
                        progress=False, device="cpu")
    loss = res.metric("mse")
    assert loss[-3:].mean() < loss[:3].mean()
    model.save_pretrained(tmp_path / "vae")
    back = report.PlainVAE.from_pretrained(tmp_path / "vae", device="cpu")
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert np.array_equal(model.sample("noir", 3, generator=g()),
                          back.sample("noir", 3, generator=g()))
    with pytest.raises(ValueError, match="decoder='conv'"):
        report.PlainVAE(VAEIATConfig.tiny())


# ------------------------------------------------------------------------------- model zoo
def test_model_specs_presets_and_overrides():
    std = report.model_specs("standard")
    assert set(std) == {"encoder", "diffusion", "vae-iat", "dcgan", "mnist-encoder",
                        "mnist-vae-iat", "mnist-vae", "mnist-dcgan"}
    assert std["mnist-vae"].train_config.phase2_steps == 0
    assert std["mnist-vae"].config.decoder == "conv" and std["mnist-vae"].config.channels == 1
    over = report.model_specs("fast", steps={"vae-iat": "5+7", "dcgan": 9, "mnist-vae": 4})
    assert (over["vae-iat"].train_config.phase1_steps,
            over["vae-iat"].train_config.phase2_steps) == (5, 7)
    assert over["dcgan"].steps == 9 and over["mnist-vae"].steps == 4
    scaled = report.model_specs("standard", scale=0.5)
    assert scaled["diffusion"].steps == std["diffusion"].steps // 2
    with pytest.raises(ValueError, match="unknown model"):
        report.model_specs("fast", steps={"gan": 3})
    with pytest.raises(ValueError, match="preset"):
        report.model_specs("huge")
    with pytest.raises(ValueError, match="P1\\+P2"):
        report.model_specs("fast", steps={"vae-iat": "a+b"})


def test_obtain_model_trains_resumably_then_reloads(tmp_path):
    spec = report.model_specs("fast")["dcgan"]
    data = cover_dataset(1, seed=0)
    m1, info1 = report.obtain_model(spec, workdir=tmp_path, dataset=data, device="cpu")
    assert info1["source"] == "trained" and info1["steps"] == spec.steps
    assert (tmp_path / "dcgan" / "model" / "covercast_model.json").is_file()
    calls = []
    m2, info2 = report.obtain_model(spec, workdir=tmp_path,
                                dataset=lambda: calls.append(1) or data, device="cpu")
    assert info2["steps"] == spec.steps
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    m3, info3 = report.obtain_model(spec, workdir=None, checkpoint=tmp_path / "dcgan" / "model",
                                device="cpu")
    assert info3["source"].startswith("checkpoint") and info3["steps"] == spec.steps
    with pytest.raises(FileNotFoundError, match="does not exist"):
        report.obtain_model(spec, workdir=None, checkpoint=tmp_path / "nope")
    with pytest.raises(ValueError, match="no committed checkpoint|No committed checkpoint"):
        report.obtain_model(report.model_specs("fast")["mnist-dcgan"], workdir=None,
                        checkpoint="committed")


def test_eval_config_refuses_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="models"):
        report.EvalConfig(out=str(tmp_path), models=("gan",))
    with pytest.raises(ValueError, match="size"):
        report.EvalConfig(out=str(tmp_path), size=48)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        report.EvalConfig(out=str(tmp_path), checkpoints=(("vae-iat", str(tmp_path / "x")),))
    with pytest.raises(ValueError, match="unknown model"):
        report.EvalConfig(out=str(tmp_path), checkpoints=(("gan", str(tmp_path)),))


# ------------------------------------------------------------------------------- evaluate
@pytest.fixture(scope="module")
def fast_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval")
    return out, report.evaluate_generators(report.EvalConfig.fast(str(out)))


def test_fast_evaluation_writes_every_file_with_sane_values(fast_run):
    out, result = fast_run
    for name in ("results.csv", "config.json", "report.md"):
        assert (out / name).is_file()
    res = pd.read_csv(out / "results.csv")
    cov = res[res["table"] == "covers"].set_index("model")
    assert set(cov.index) == {"real covers (held-out)", "diffusion", "vae-iat", "dcgan"}
    gen = cov.loc[["diffusion", "vae-iat", "dcgan"]]
    assert (gen["frechet_distance"] >= 0).all() and np.isfinite(gen["kid"]).all()
    for col in ("style_accuracy", "mode_collapse_rate", "empty_mode_rate", "precision",
                "recall"):
        assert gen[col].between(0, 1).all(), col
    assert (gen["covers_per_s"] > 0).all() and (gen["parameters"] > 0).all()
    assert gen.loc["diffusion", "seed_fid"] == 12.4 and gen.loc["dcgan", "seed_fid"] == 34.7
    mn = res[res["table"] == "mnist5k"].set_index("model")
    assert set(mn.index) == {"real digits (other half)", "vae-iat", "vae", "dcgan"}
    report = (out / "report.md").read_text()
    assert "NOT Inception-FID" in report and "34.7" in report and "FID < 6" in report
    assert "Why our numbers differ" in report
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["eval_config"]["preset"] == "fast" and "NOT Inception-FID" in cfg["note"]
    grids = {p.name for p in (out / "grids").glob("*.png")}
    assert {"covers_diffusion.png", "covers_vae-iat.png", "covers_dcgan.png",
            "covers_real.png", "mnist_vae.png"} <= grids


def test_fast_evaluation_is_reproducible_and_resumes_without_retraining(fast_run):
    out, result = fast_run
    before = {p: p.stat().st_mtime_ns for p in (out / "models").rglob("weights-*")}
    again = report.evaluate_generators(report.EvalConfig.fast(str(out)))
    after = {p: p.stat().st_mtime_ns for p in (out / "models").rglob("weights-*")}
    assert before == after       # finished checkpoints are reloaded, not rewritten
    cols = ["frechet_distance", "kid", "style_accuracy", "mode_collapse_rate"]
    pd.testing.assert_frame_equal(result["results"][cols], again["results"][cols])
