"""VAE-IAT: encoder branches, reparameterization, row-LSTM generator, two-phase training."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from covercast.generators.data import cover_dataset  # noqa: E402
from covercast.generators.training import (  # noqa: E402
    CheckpointError,
    CheckpointNotFoundError,
    labels_to_weights,
)
from covercast.generators.vae_iat import (  # noqa: E402
    VAEIAT,
    RowLSTMGenerator,
    VAEIATConfig,
    VAEIATTrainConfig,
    image_to_rows,
    rows_to_image,
    train_vae_iat,
)

TRAIN = VAEIATTrainConfig(phase1_steps=3, phase2_steps=3, batch_size=8, warmup_steps=1,
                          kl_warmup_steps=2)


@pytest.fixture(scope="module")
def data():
    return cover_dataset(2, size=32, seed=0)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _state(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def _batch(data, n=6):
    x, y = data.tensors()
    step = max(1, len(x) // n)  # spread over the styles (the data is sorted by style)
    return x[::step][:n], labels_to_weights(y[::step][:n], len(data.styles))


# ------------------------------------------------------------------ architecture
@pytest.mark.parametrize("decoder", ["lstm", "conv"])
@pytest.mark.parametrize("size", [32, 64])
def test_shapes(decoder, size):
    cfg = VAEIATConfig.tiny(decoder=decoder, image_size=size)
    m = VAEIAT(cfg).eval()
    x = torch.rand(4, 3, size, size) * 2 - 1
    w = labels_to_weights(torch.tensor([0, 1, 2, 3]), 5)
    mu, logvar = m.encode(x, w)
    assert mu.shape == logvar.shape == (4, cfg.latent_dim)
    out = m.decode(mu, w)
    assert out.shape == (4, 3, size, size) and out.abs().max() <= 1
    d_logit, feats = m.discriminate(x, w)
    assert d_logit.shape == (4,) and feats.shape[0] == 4
    covers = m.sample("minimal", 5, generator=_gen(0))
    assert covers.shape == (5, size, size, 3) and covers.dtype == np.uint8


@pytest.mark.parametrize("conditional", [True, False])
def test_discriminator_conditioning(conditional):
    m = VAEIAT(VAEIATConfig.tiny(conditional_discriminator=conditional)).eval()
    x = torch.zeros(1, 3, 32, 32)
    with torch.no_grad():
        d0, _ = m.discriminate(x, labels_to_weights(torch.tensor([0]), 5))
        d1, _ = m.discriminate(x, labels_to_weights(torch.tensor([1]), 5))
    assert torch.equal(d0, d1) != conditional


def test_rows_round_trip():
    x = torch.randn(2, 3, 8, 8)
    rows = image_to_rows(x)
    assert rows.shape == (2, 8, 24)
    assert torch.equal(rows[:, 3, :3], x[:, :, 3, 0])  # row 3, first pixel, all channels
    assert torch.equal(rows_to_image(rows, 3), x)


def test_free_running_equals_teacher_forcing_on_its_own_rows():
    """The hand-written fast decoding loop is the same LSTM as the teacher-forced nn.LSTM."""
    m = VAEIAT(VAEIATConfig.tiny(), seed=1).eval()
    z = torch.randn(3, m.latent_dim, generator=_gen(0))
    w = labels_to_weights(torch.tensor([0, 2, 4]), 5)
    with torch.no_grad():
        free = m.decode(z, w)
        forced = m.decode(z, w, teacher=free)
    assert torch.allclose(free, forced, atol=1e-5)


def test_row_feedback_matters_and_can_be_switched_off():
    m = VAEIAT(VAEIATConfig.tiny(), seed=0).eval()
    gen = m.generator_net
    assert isinstance(gen, RowLSTMGenerator) and gen.row_feedback
    z = torch.randn(2, m.latent_dim, generator=_gen(0))
    w = labels_to_weights(torch.tensor([0, 1]), 5)
    with torch.no_grad():
        a = m.decode(z, w, teacher=torch.zeros(2, 3, 32, 32))
        b = m.decode(z, w, teacher=torch.ones(2, 3, 32, 32))
    assert torch.allclose(a[:, :, 0], b[:, :, 0])  # row 0 sees no previous row
    assert not torch.allclose(a[:, :, 1:], b[:, :, 1:])
    flat = VAEIAT(VAEIATConfig.tiny(row_feedback=False)).eval()
    assert flat.sample("noir", 2, generator=_gen(0)).shape == (2, 32, 32, 3)


def test_paper_fusion_takes_mu_from_the_lstm_and_log_var_from_the_cnn(data):
    m = VAEIAT(VAEIATConfig.tiny(fusion="paper"))
    x, w = _batch(data, 2)
    mu, logvar = m.encode(x, w)
    enc = m.encoder
    g_mu = torch.autograd.grad(mu.sum(), [enc.fc_long[0].weight, enc.fc_short[0].weight],
                               allow_unused=True, retain_graph=True)
    g_lv = torch.autograd.grad(logvar.sum(), [enc.fc_long[0].weight, enc.fc_short[0].weight],
                               allow_unused=True)
    assert g_mu[0] is None and g_mu[1].abs().sum() > 0  # mu: short-range (LSTM) only
    assert g_lv[1] is None and g_lv[0].abs().sum() > 0  # log var: long-range (CNN) only
    m2 = VAEIAT(VAEIATConfig.tiny(fusion="concat"))
    mu2, _ = m2.encode(x, w)
    g = torch.autograd.grad(mu2.sum(), [m2.encoder.fc_long[0].weight,
                                        m2.encoder.fc_short[0].weight])
    assert all(t.abs().sum() > 0 for t in g)


def test_reparameterization_and_kl():
    mu, logvar = torch.zeros(4, 3), torch.zeros(4, 3)
    assert torch.allclose(VAEIAT.kl(mu, logvar), torch.zeros(4))
    assert VAEIAT.kl(mu + 1, logvar)[0].item() == pytest.approx(1.5)
    z1 = VAEIAT.reparameterize(mu + 2, logvar - 100, _gen(0))
    assert torch.allclose(z1, mu + 2, atol=1e-10)  # no variance: z = mu
    a = VAEIAT.reparameterize(mu, logvar, _gen(3))
    assert torch.equal(a, VAEIAT.reparameterize(mu, logvar, _gen(3)))
    # the gradient flows to mu and log var (the reparameterization trick)
    mu_r = torch.zeros(2, 3, requires_grad=True)
    lv_r = torch.zeros(2, 3, requires_grad=True)
    VAEIAT.reparameterize(mu_r, lv_r, _gen(0)).sum().backward()
    assert torch.all(mu_r.grad == 1) and lv_r.grad.abs().sum() > 0


def test_sampling_determinism_mixtures_and_decode_latent():
    m = VAEIAT(VAEIATConfig.tiny(), seed=0)
    a = m.sample("noir", 6, generator=_gen(1))
    assert np.array_equal(a, m.sample("noir", 6, generator=_gen(1)))
    assert not np.array_equal(a, m.sample("noir", 6, generator=_gen(2)))
    assert np.abs(a.astype(int) - m.sample("noir", 6, generator=_gen(1), batch_size=4)).max() <= 1
    z = np.random.default_rng(0).standard_normal((3, m.latent_dim)).astype(np.float32)
    by_name = m.decode_latent(z, "pastel")
    by_weights = m.decode_latent(z, np.eye(5, dtype=np.float32)[[2, 2, 2]])
    assert np.array_equal(by_name, by_weights)
    mixed = m.decode_latent(z, np.array([0, 0, 0.5, 0.5, 0]))
    assert mixed.shape == (3, 32, 32, 3) and not np.array_equal(mixed, by_name)
    with pytest.raises(ValueError, match=r"shape \(n, 8\)"):
        m.decode_latent(np.zeros((3, 5)), "noir")
    with pytest.raises(ValueError, match="Unknown style 'gothic'"):
        m.sample("gothic", 2)
    assert m.reconstruct(np.zeros((2, 32, 32, 3), np.uint8), "noir").shape == (2, 32, 32, 3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(image_size=28), "`image_size` 28 cannot be taken by VAE-IAT's discriminator"),
    (dict(image_size=16, encoder_channels=(8, 8, 8, 8, 8)), "multiple of 32"),
    (dict(fusion="sum"), "`fusion` must be one of"),
    (dict(decoder="gru"), "`decoder` must be one of"),
])
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VAEIATConfig.tiny(**kwargs)


def test_train_config_errors(data):
    with pytest.raises(ValueError, match="`phase1_mode` must be one of"):
        VAEIATTrainConfig(phase1_mode="mixed")
    with pytest.raises(ValueError, match="`pixel_sigma` must be > 0"):
        VAEIATTrainConfig(pixel_sigma=0)
    m = VAEIAT(VAEIATConfig.tiny(channels=1))
    with pytest.raises(ValueError, match="channels=3"):
        train_vae_iat(m, data, TRAIN, progress=False)


# ------------------------------------------------------------------ training
@pytest.mark.parametrize("decoder", ["lstm", "conv"])
def test_phase1_lowers_the_reconstruction_loss(data, decoder):
    m = VAEIAT(VAEIATConfig.tiny(decoder=decoder), seed=0)
    cfg = VAEIATTrainConfig(phase1_steps=30, phase2_steps=0, batch_size=16, lr=3e-3,
                            warmup_steps=0, kl_warmup_steps=30)
    res = train_vae_iat(m, data, cfg, progress=False)
    assert set(res.metric("phase")) == {1.0}
    mse = res.metric("mse")
    assert mse[-5:].mean() < 0.75 * mse[:5].mean()
    if decoder == "lstm":  # no batch norm: the posterior-mean reconstruction of a fixed batch
        x, w = _batch(data, 16)
        with torch.no_grad():
            mu, _ = m.encode(x, w)
            fresh = VAEIAT(VAEIATConfig.tiny(decoder=decoder), seed=0)
            mu0, _ = fresh.encode(x, w)
            assert torch.mean((m.decode(mu, w) - x) ** 2) < \
                0.75 * torch.mean((fresh.decode(mu0, w) - x) ** 2)


def test_phase2_trains_all_three_networks_on_their_own_losses(data):
    m = VAEIAT(VAEIATConfig.tiny(), seed=0)
    cfg = VAEIATTrainConfig(phase1_steps=0, phase2_steps=2, batch_size=8)
    before = _state(m)
    res = train_vae_iat(m, data, cfg, progress=False)
    assert list(res.metric("phase")) == [2.0, 2.0]
    for name in ("d_loss", "g_adv", "feat_rec", "recon", "mse", "kl", "d_real", "d_fake"):
        assert np.all(np.isfinite(res.metric(name)))
    after = m.state_dict()
    for prefix in ("encoder.", "generator_net.", "discriminator.", "style_embedding."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(prefix))


def test_resume_across_the_phases_equals_uninterrupted(data, tmp_path):
    full = VAEIAT(VAEIATConfig.tiny(), seed=0)
    ref = train_vae_iat(full, data, TRAIN, progress=False)
    assert list(ref.metric("phase")) == [1, 1, 1, 2, 2, 2]

    for stop_at in (1, 4):  # once in phase 1, once in phase 2
        ck = tmp_path / f"stop{stop_at}"
        part = VAEIAT(VAEIATConfig.tiny(), seed=0)
        r = train_vae_iat(part, data, TRAIN, checkpoint_dir=ck, progress=False,
                          callback=lambda step, m, s=stop_at: step < s)
        assert r.stopped_early and r.steps_done == stop_at + 1
        fresh = VAEIAT(VAEIATConfig.tiny(), seed=9)
        res = train_vae_iat(fresh, data, TRAIN, checkpoint_dir=ck, progress=False)
        assert res.resumed_from == stop_at + 1 and res.steps_done == 6
        np.testing.assert_allclose(res.metric("d_loss"), ref.metric("d_loss"), rtol=1e-4)
        a, b = _state(full), _state(fresh)
        assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_checkpoint_of_another_config_or_kind_is_refused(data, tmp_path):
    m = VAEIAT(VAEIATConfig.tiny(), seed=0)
    train_vae_iat(m, data, TRAIN, checkpoint_dir=tmp_path, progress=False)
    conv = VAEIAT(VAEIATConfig.tiny(decoder="conv"))
    with pytest.raises(CheckpointError, match="decoder: 'conv' \\(asked\\) vs 'lstm'"):
        train_vae_iat(conv, data, TRAIN, checkpoint_dir=tmp_path, progress=False)
    from covercast.generators.dcgan import DCGAN, DCGANConfig, DCGANTrainConfig, train_dcgan

    with pytest.raises(CheckpointError, match="checkpoint of a 'vae_iat' model, not 'dcgan'"):
        train_dcgan(DCGAN(DCGANConfig.tiny()), data, DCGANTrainConfig(steps=1, batch_size=4),
                    checkpoint_dir=tmp_path, progress=False)
    # a longer phase 2 continues the finished run
    longer = VAEIATTrainConfig(**{**TRAIN.__dict__, "phase2_steps": 4})
    res = train_vae_iat(m, data, longer, checkpoint_dir=tmp_path, progress=False)
    assert res.resumed_from == 6 and res.steps_done == 7


def test_save_load_round_trip_and_errors(tmp_path):
    m = VAEIAT(VAEIATConfig.tiny(), seed=3)
    path = m.save_pretrained(tmp_path / "vae")
    loaded = VAEIAT.from_pretrained(path, device="cpu")
    assert loaded.config == m.config
    a = m.sample("retro", 4, generator=_gen(0))
    assert np.array_equal(a, loaded.sample("retro", 4, generator=_gen(0)))
    with pytest.raises(CheckpointError, match="latent_dim: 16 \\(asked\\) vs 8"):
        VAEIAT.from_pretrained(path, config=VAEIATConfig.tiny(latent_dim=16))
    from covercast.generators.dcgan import DCGAN

    with pytest.raises(CheckpointError, match="holds a 'vae_iat' model"):
        DCGAN.from_pretrained(path)
    with pytest.raises(CheckpointNotFoundError):
        VAEIAT.from_pretrained(tmp_path / "missing")
    (path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="corrupt"):
        VAEIAT.from_pretrained(path)
