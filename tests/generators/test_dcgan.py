"""The class-conditional DCGAN baseline."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from covercast.generators.data import cover_dataset, sklearn_digits  # noqa: E402
from covercast.generators.dcgan import (  # noqa: E402
    DCGAN,
    ConvDecoder,
    ConvDiscriminator,
    DCGANConfig,
    DCGANTrainConfig,
    train_dcgan,
)
from covercast.generators.training import CheckpointError, labels_to_weights  # noqa: E402

TRAIN = DCGANTrainConfig(steps=6, batch_size=8)


@pytest.fixture(scope="module")
def data():
    return cover_dataset(2, size=32, seed=0)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _state(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


@pytest.mark.parametrize("size", [16, 32, 64])
def test_blocks_shapes(size):
    dec = ConvDecoder(10, size, 3, 8).eval()
    x = dec(torch.randn(2, 10))
    assert x.shape == (2, 3, size, size) and x.abs().max() <= 1
    disc = ConvDiscriminator(size, 3, 8, cond_dim=5)
    logits, feats = disc.features(x, torch.ones(2, 5) / 5)
    assert logits.shape == (2,) and feats.shape == (2, disc.feature_dim)
    with pytest.raises(ValueError, match="conditional: pass `cond`"):
        disc(x)


def test_sample_shapes_determinism_and_conditioning():
    m = DCGAN(DCGANConfig.tiny(), seed=0)
    a = m.sample("noir", 5, generator=_gen(0))
    assert a.shape == (5, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, m.sample("noir", 5, generator=_gen(0)))
    assert not np.array_equal(a, m.sample("noir", 5, generator=_gen(1)))
    assert not np.array_equal(a, m.sample("vivid", 5, generator=_gen(0)))
    # the discriminator sees the style as input channels
    x = torch.zeros(1, 3, 32, 32)
    with torch.no_grad():
        d0 = m.discriminator(x, labels_to_weights(torch.tensor([0]), 5))
        d1 = m.discriminator(x, labels_to_weights(torch.tensor([1]), 5))
    assert not torch.equal(d0, d1)


def test_grey_digits_model():
    m = DCGAN(DCGANConfig.tiny(channels=1, image_size=16,
                               styles=tuple(str(d) for d in range(10))))
    out = m.sample("7", 2, generator=_gen(0))
    assert out.shape == (2, 16, 16, 3)
    assert np.array_equal(out[..., 0], out[..., 2])  # grey repeated to RGB
    ds = sklearn_digits(16)
    res = train_dcgan(m, ds, DCGANTrainConfig(steps=2, batch_size=8), progress=False)
    assert res.steps_done == 2


@pytest.mark.parametrize("kwargs, match", [
    (dict(image_size=24), "`image_size` 24 cannot be taken by the DCGAN: it must be 4 \\* 2\\*\\*k"),
    (dict(image_size=4), "4 \\* 2\\*\\*k with k >= 1"),
    (dict(latent_dim=0), "`latent_dim` must be an integer >= 1"),
])
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DCGANConfig.tiny(**kwargs)


def test_training_metrics_determinism_and_effect(data):
    states, hists = [], []
    for _ in range(2):
        m = DCGAN(DCGANConfig.tiny(), seed=0)
        before = m.sample("noir", 4, generator=_gen(0))
        res = train_dcgan(m, data, TRAIN, progress=False)
        states.append(_state(m))
        hists.append(res.metric("d_loss"))
        assert not np.array_equal(before, m.sample("noir", 4, generator=_gen(0)))
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    np.testing.assert_array_equal(hists[0], hists[1])
    for name in ("g_loss", "d_real", "d_fake"):
        assert np.all(np.isfinite(res.metric(name)))
    assert np.all((res.metric("d_real") > 0) & (res.metric("d_real") < 1))


def test_discriminator_learns_to_separate_real_from_fixed_fakes(data):
    """A few steps widen the gap between D's scores of real and generated covers."""
    m = DCGAN(DCGANConfig.tiny(), seed=0)
    cfg = DCGANTrainConfig(steps=25, batch_size=16, lr=2e-3)
    res = train_dcgan(m, data, cfg, progress=False)
    gap = res.metric("d_real") - res.metric("d_fake")
    assert gap[-5:].mean() > gap[:5].mean()


def test_resume_equals_uninterrupted_with_batch_norm_state(data, tmp_path):
    full = DCGAN(DCGANConfig.tiny(), seed=0)
    train_dcgan(full, data, TRAIN, progress=False)
    part = DCGAN(DCGANConfig.tiny(), seed=0)
    train_dcgan(part, data, TRAIN, checkpoint_dir=tmp_path, checkpoint_every=2, progress=False,
                callback=lambda step, m: step < 3)
    fresh = DCGAN(DCGANConfig.tiny(), seed=1)
    res = train_dcgan(fresh, data, TRAIN, checkpoint_dir=tmp_path, progress=False)
    assert res.resumed_from == 4
    a, b = _state(full), _state(fresh)
    assert any("running_mean" in k for k in a)
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)


def test_save_load_and_config_check(tmp_path, data):
    m = DCGAN(DCGANConfig.tiny(), seed=2)
    train_dcgan(m, data, DCGANTrainConfig(steps=2, batch_size=8), progress=False)
    path = m.save_pretrained(tmp_path / "gan")
    loaded = DCGAN.from_pretrained(path, device="cpu")
    assert np.array_equal(m.sample("pastel", 3, generator=_gen(5)),
                          loaded.sample("pastel", 3, generator=_gen(5)))
    with pytest.raises(CheckpointError, match="gen_width: 16 \\(asked\\) vs 8"):
        DCGAN.from_pretrained(path, config=DCGANConfig.tiny(gen_width=16))


def test_training_command_writes_a_resumable_run(tmp_path, capsys):
    from covercast.experiments.generators_cli import main

    out = tmp_path / "run"
    base = ["generators", "train", "dcgan", "--out", str(out), "--arch", "tiny",
            "--per-style-topic", "2", "--batch-size", "8", "--device", "cpu", "--quiet"]
    assert main(base + ["--steps", "2"]) == 0
    assert (out / "checkpoint" / "checkpoint.json").is_file()
    assert (out / "config.json").is_file() and (out / "history.csv").is_file()
    first = DCGAN.from_pretrained(out / "model", device="cpu")
    assert main(base + ["--steps", "4"]) == 0
    assert "trained 4 steps (resumed from 2)" in capsys.readouterr().out
    second = DCGAN.from_pretrained(out / "model", device="cpu")
    assert not torch.equal(first.generator_net.project[0].weight,
                           second.generator_net.project[0].weight)
    assert (out / "history.csv").read_text().count("\n") == 5  # header + 4 steps
    assert main(base + ["--steps", "4", "--lr", "0.1"]) == 2
    assert "another training config: lr" in capsys.readouterr().err
    assert main(base + ["--phase1-steps", "3"]) == 2
    assert "--phase1-steps` applies to vae-iat only" in capsys.readouterr().err
