"""The cover encoder: style/topic prediction, features, torchmetrics FID/KID, saving."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from covercast.generators.data import cover_dataset, sklearn_digits  # noqa: E402
from covercast.generators.encoder import (  # noqa: E402
    CoverEncoder,
    CoverEncoderConfig,
    EncoderTrainConfig,
    FeatureExtractor,
    evaluate_encoder,
    train_cover_encoder,
)
from covercast.generators.training import CheckpointError  # noqa: E402


@pytest.fixture(scope="module")
def data():
    return cover_dataset(6, size=32, seed=0)


@pytest.fixture(scope="module")
def trained(data):
    enc = CoverEncoder(CoverEncoderConfig.tiny(), seed=0)
    res = train_cover_encoder(enc, data, EncoderTrainConfig(steps=80, batch_size=32,
                                                            warmup_steps=5), progress=False)
    return enc, res


def test_training_lowers_the_loss_and_recognises_held_out_styles(trained):
    enc, res = trained
    loss = res.metric("loss")
    assert loss[-10:].mean() < 0.8 * loss[:10].mean()
    held_out = cover_dataset(2, size=32, seed=99)
    acc = evaluate_encoder(enc, held_out)
    assert acc["style_accuracy"] > 0.6  # chance is 0.2
    assert 0 <= acc["topic_accuracy"] <= 1


def test_numpy_outputs(trained, data):
    enc, _ = trained
    p = enc.style_probs(data.images[:7])
    assert p.shape == (7, 5) and p.dtype == np.float32
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    assert enc.topic_probs(data.images[:7]).shape == (7, 6)
    f = enc.features(data.images[:7])
    assert f.shape == (7, 16) and np.all(f >= 0)  # after ReLU
    # batching does not change the result; the encoder is left as it was (eval)
    np.testing.assert_allclose(enc.style_probs(data.images[:7], batch_size=3), p, atol=1e-6)
    assert not enc.training
    # 64px covers are resized to the encoder's 32px
    big = cover_dataset(1, size=64, seed=0)
    assert enc.style_probs(big.images).shape == (len(big), 5)


def test_feature_extractor_handles_uint8_and_float_and_any_size(trained, data):
    enc, _ = trained
    fe = FeatureExtractor(enc)
    u8 = torch.from_numpy(data.images[:4]).permute(0, 3, 1, 2)
    a = fe(u8)
    b = fe(u8.float() / 255.0)
    assert a.shape == (4, fe.num_features)
    assert torch.allclose(a, b, atol=1e-5)
    sym = FeatureExtractor(enc, input_range="symmetric")
    assert torch.allclose(sym(u8.float() / 127.5 - 1.0), a, atol=1e-5)
    assert fe(torch.randint(0, 255, (1, 3, 299, 299), dtype=torch.uint8)).shape == (1, 16)
    fe.train()
    assert fe.training and not fe.encoder.training  # the frozen encoder stays in eval
    with pytest.raises(ValueError, match="`input_range` must be one of"):
        FeatureExtractor(enc, input_range="0-255")


@pytest.mark.filterwarnings("ignore:Metric `Kernel Inception Distance` will save")
def test_torchmetrics_fid_and_kid_with_the_encoder_features(trained, data):
    fid_mod = pytest.importorskip("torchmetrics.image.fid")
    kid_mod = pytest.importorskip("torchmetrics.image.kid")
    enc, _ = trained
    fe = enc.feature_extractor()
    real = torch.from_numpy(data.images).permute(0, 3, 1, 2)
    noir = torch.from_numpy(data.images[data.style == 3]).permute(0, 3, 1, 2)

    fid = fid_mod.FrechetInceptionDistance(feature=fe, normalize=False)
    fid.update(real, real=True)
    fid.update(real, real=False)
    same = float(fid.compute())
    fid.reset()
    fid.update(real, real=True)
    fid.update(noir, real=False)
    one_style = float(fid.compute())
    assert abs(same) < 1e-2 and one_style > 10 * max(abs(same), 1e-3)

    kid = kid_mod.KernelInceptionDistance(feature=fe, subset_size=20, subsets=5)
    kid.update(real, real=True)
    kid.update(noir, real=False)
    mean, std = kid.compute()
    assert float(mean) > 0 and np.isfinite(float(std))


def test_save_load_round_trip_and_errors(trained, data, tmp_path):
    enc, _ = trained
    path = enc.save_pretrained(tmp_path / "enc")
    loaded = CoverEncoder.from_pretrained(path, device="cpu")
    np.testing.assert_array_equal(loaded.style_probs(data.images[:5]),
                                  enc.style_probs(data.images[:5]))
    with pytest.raises(CheckpointError, match="feature_dim: 32 \\(asked\\) vs 16"):
        CoverEncoder.from_pretrained(path, config=CoverEncoderConfig.tiny(feature_dim=32))


def test_bad_input(data):
    with pytest.raises(ValueError, match="CoverDataset"):
        train_cover_encoder(CoverEncoder(CoverEncoderConfig.tiny(styles=tuple("0123456789"),
                                                                  channels=1)),
                            sklearn_digits(16), progress=False)
    with pytest.raises(ValueError, match="image_size=32"):
        train_cover_encoder(CoverEncoder(CoverEncoderConfig.tiny(image_size=64)), data,
                            EncoderTrainConfig(steps=1), progress=False)
    with pytest.raises(ValueError, match="`image_size` 30 cannot be taken by a cover encoder"):
        CoverEncoderConfig(image_size=30)
    with pytest.raises(ValueError, match="uint8"):
        CoverEncoder(CoverEncoderConfig.tiny()).style_probs(np.zeros((2, 32, 32, 3)))


def test_resume_equals_uninterrupted(data, tmp_path):
    cfg = EncoderTrainConfig(steps=6, batch_size=16, warmup_steps=2)
    full = CoverEncoder(CoverEncoderConfig.tiny(), seed=0)
    train_cover_encoder(full, data, cfg, progress=False)
    part = CoverEncoder(CoverEncoderConfig.tiny(), seed=0)
    train_cover_encoder(part, data, cfg, checkpoint_dir=tmp_path, progress=False,
                        callback=lambda step, m: step < 2)
    fresh = CoverEncoder(CoverEncoderConfig.tiny(), seed=4)
    res = train_cover_encoder(fresh, data, cfg, checkpoint_dir=tmp_path, progress=False)
    assert res.resumed_from == 3
    a, b = full.state_dict(), fresh.state_dict()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)
