"""DiffusionCoverGenerator: shapes, determinism, guidance, training, checkpoints, errors."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from covercast.generators.data import cover_dataset  # noqa: E402
from covercast.generators.diffusion import (  # noqa: E402
    DiffusionConfig,
    DiffusionCoverGenerator,
    DiffusionTrainConfig,
    train_diffusion,
)
from covercast.generators.training import (  # noqa: E402
    CheckpointError,
    CheckpointNotFoundError,
    labels_to_weights,
)

TRAIN = DiffusionTrainConfig(steps=6, batch_size=8, lr=1e-3, warmup_steps=2, ema_decay=0.9)


@pytest.fixture(scope="module")
def data():
    return cover_dataset(2, size=32, seed=0)


@pytest.fixture(scope="module")
def model():
    return DiffusionCoverGenerator(DiffusionConfig.tiny(), seed=0)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _state(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


# ------------------------------------------------------------------ sampling
@pytest.mark.parametrize("size", [32, 64])
def test_sample_shape_dtype(size):
    m = DiffusionCoverGenerator(DiffusionConfig.tiny(image_size=size))
    out = m.sample("vivid", 3, generator=_gen(0), num_inference_steps=2)
    assert out.shape == (3, size, size, 3) and out.dtype == np.uint8


@pytest.mark.parametrize("sampler,eta", [("ddim", 0.0), ("ddim", 1.0), ("dpmsolver++", 0.0)])
def test_sample_is_deterministic_given_a_generator(model, sampler, eta):
    kw = dict(num_inference_steps=3, guidance_scale=2.0, sampler=sampler, eta=eta)
    a = model.sample("noir", 4, generator=_gen(1), **kw)
    b = model.sample("noir", 4, generator=_gen(1), **kw)
    c = model.sample("noir", 4, generator=_gen(2), **kw)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    if eta == 0:
        # all initial noise is drawn up front: the batch size changes only float rounding
        d = model.sample("noir", 4, generator=_gen(1), batch_size=3, **kw)
        assert np.abs(a.astype(int) - d).max() <= 1


def test_style_and_guidance_change_the_covers(model):
    kw = dict(num_inference_steps=3)
    noir = model.sample("noir", 2, generator=_gen(0), guidance_scale=3.0, **kw)
    vivid = model.sample("vivid", 2, generator=_gen(0), guidance_scale=3.0, **kw)
    assert not np.array_equal(noir, vivid)
    # with guidance 0 only the null label is used: the style does not matter
    u1 = model.sample("noir", 2, generator=_gen(0), guidance_scale=0.0, **kw)
    u2 = model.sample("vivid", 2, generator=_gen(0), guidance_scale=0.0, **kw)
    assert np.array_equal(u1, u2)
    # guidance 1 skips the unconditional pass (every UNet call sees the batch once, not twice)
    # and equals the plain conditional model: the guided formula at a scale a hair above 1,
    # which runs both passes, gives the same covers
    batches: list[int] = []
    hook = model.register_forward_pre_hook(lambda mod, args: batches.append(len(args[0])))
    try:
        g1 = model.sample(["noir", "vivid"], 2, generator=_gen(0), guidance_scale=1.0, **kw)
        one_pass = list(batches)
        batches.clear()
        near = model.sample(["noir", "vivid"], 2, generator=_gen(0),
                            guidance_scale=1.0 + 1e-6, **kw)
    finally:
        hook.remove()
    assert g1.shape == (2, 32, 32, 3) and g1.dtype == np.uint8
    assert one_pass == [2] * kw["num_inference_steps"]
    assert batches == [4] * kw["num_inference_steps"]
    assert np.abs(g1.astype(np.int16) - near.astype(np.int16)).max() <= 1


def test_one_hot_mixture_equals_the_label(model):
    x = torch.randn(3, 3, 32, 32, generator=_gen(0))
    t = torch.tensor([5, 50, 90])
    labels = torch.tensor([0, 3, 5])  # 5 = the null label
    w = labels_to_weights(labels, model.n_styles + 1)
    with torch.no_grad():
        by_weights = model(x, t, w)
        by_label = model.unet(x, t, class_labels=labels).sample
    assert torch.allclose(by_weights, by_label, atol=1e-6)
    mix = model.sample(np.array([0.5, 0, 0, 0.5, 0]), 2, generator=_gen(0),
                       num_inference_steps=2)
    assert mix.shape == (2, 32, 32, 3)


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("kwargs, match", [
    (dict(image_size=30, block_out_channels=(8, 16, 16), attention_levels=(0, 0, 0)),
     "`image_size` 30 cannot be taken by a UNet with 3 resolution levels: it must be a "
     "multiple of 4. Use 28 or 32"),
    (dict(block_out_channels=(12, 32)), "divisible by `norm_num_groups`=8"),
    (dict(beta_schedule="cosine"), "`beta_schedule` must be one of"),
    (dict(styles=("a", "a")), "distinct"),
    (dict(channels=2), "`channels` must be 1 or 3"),
])
def test_config_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DiffusionConfig.tiny(**kwargs)


def test_sample_errors_before_work(model):
    with pytest.raises(ValueError, match="Unknown style 'gothic'"):
        model.sample("gothic", 2)
    with pytest.raises(ValueError, match="exceeds the 100 training timesteps"):
        model.sample("noir", 2, num_inference_steps=500)
    with pytest.raises(ValueError, match="`guidance_scale`"):
        model.sample("noir", 2, guidance_scale=-1.0)


def test_training_refuses_data_that_does_not_fit(data):
    m = DiffusionCoverGenerator(DiffusionConfig.tiny(image_size=64))
    with pytest.raises(ValueError, match="image_size=64"):
        train_diffusion(m, data, TRAIN, progress=False)
    m = DiffusionCoverGenerator(DiffusionConfig.tiny(styles=("noir", "vivid")))
    with pytest.raises(ValueError, match="styles"):
        train_diffusion(m, data, TRAIN, progress=False)
    with pytest.raises(ValueError, match="`cond_drop_prob`"):
        DiffusionTrainConfig(cond_drop_prob=1.5)


# ------------------------------------------------------------------ training
def test_a_few_steps_lower_the_loss(data):
    m = DiffusionCoverGenerator(DiffusionConfig.tiny(), seed=0)
    x, y = data.tensors()
    x, y = x[:32], y[:32]

    def fixed_loss():
        with torch.no_grad():
            return m.loss(x, y, generator=_gen(123)).item()

    before = fixed_loss()
    res = train_diffusion(m, data, DiffusionTrainConfig(steps=25, batch_size=16, lr=2e-3,
                                                        warmup_steps=0, ema_decay=0.0),
                          progress=False)
    assert res.steps_done == 25 and len(res.metric("loss")) == 25
    assert fixed_loss() < 0.7 * before


def test_training_is_deterministic(data):
    runs = []
    for _ in range(2):
        m = DiffusionCoverGenerator(DiffusionConfig.tiny(), seed=0)
        train_diffusion(m, data, TRAIN, progress=False)
        runs.append(_state(m))
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_resume_equals_uninterrupted(data, tmp_path):
    full = DiffusionCoverGenerator(DiffusionConfig.tiny(), seed=0)
    ref = train_diffusion(full, data, TRAIN, progress=False)

    part = DiffusionCoverGenerator(DiffusionConfig.tiny(), seed=0)
    stopped = train_diffusion(part, data, TRAIN, checkpoint_dir=tmp_path, progress=False,
                              callback=lambda step, m: step < 2)
    assert stopped.stopped_early and stopped.steps_done == 3
    assert json.loads((tmp_path / "checkpoint.json").read_text())["step"] == 3

    fresh = DiffusionCoverGenerator(DiffusionConfig.tiny(), seed=5)  # other init: overwritten
    res = train_diffusion(fresh, data, TRAIN, checkpoint_dir=tmp_path, progress=False)
    assert res.resumed_from == 3 and res.steps_done == 6
    np.testing.assert_allclose(res.metric("loss"), ref.metric("loss"), rtol=1e-5)
    a, b = _state(full), _state(fresh)
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_checkpoint_from_another_config_is_refused_before_work(data, tmp_path):
    m = DiffusionCoverGenerator(DiffusionConfig.tiny(), seed=0)
    train_diffusion(m, data, DiffusionTrainConfig(steps=2, batch_size=8), checkpoint_dir=tmp_path,
                    progress=False)
    other = DiffusionCoverGenerator(DiffusionConfig.tiny(block_out_channels=(8, 16)), seed=0)
    before = _state(other)
    with pytest.raises(CheckpointError, match=r"block_out_channels: \[8, 16\] \(asked\)"):
        train_diffusion(other, data, DiffusionTrainConfig(steps=4, batch_size=8),
                        checkpoint_dir=tmp_path, progress=False)
    assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())
    with pytest.raises(CheckpointError, match="lr: 0.01 \\(asked\\) vs 0.0002"):
        train_diffusion(m, data, DiffusionTrainConfig(steps=4, batch_size=8, lr=0.01),
                        checkpoint_dir=tmp_path, progress=False)
    # more steps is allowed (continue a finished run)
    res = train_diffusion(m, data, DiffusionTrainConfig(steps=3, batch_size=8),
                          checkpoint_dir=tmp_path, progress=False)
    assert res.resumed_from == 2 and res.steps_done == 3


def test_corrupt_or_missing_checkpoint_files(data, tmp_path):
    m = DiffusionCoverGenerator(DiffusionConfig.tiny(), seed=0)
    cfg = DiffusionTrainConfig(steps=2, batch_size=8)
    train_diffusion(m, data, cfg, checkpoint_dir=tmp_path, progress=False)
    weights = next(tmp_path.glob("weights-*.safetensors"))
    blob = bytearray(weights.read_bytes())
    blob[-10] ^= 0xFF
    weights.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError, match="corrupt"):
        train_diffusion(m, data, cfg, checkpoint_dir=tmp_path, progress=False)
    weights.unlink()
    with pytest.raises(CheckpointNotFoundError, match="missing"):
        train_diffusion(m, data, cfg, checkpoint_dir=tmp_path, progress=False)
    (tmp_path / "checkpoint.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        train_diffusion(m, data, cfg, checkpoint_dir=tmp_path, progress=False)
    # resume=False starts over and overwrites the broken checkpoint
    res = train_diffusion(m, data, cfg, checkpoint_dir=tmp_path, progress=False, resume=False)
    assert res.resumed_from == 0 and res.steps_done == 2


# ------------------------------------------------------------------ save / load
def test_save_load_round_trip(model, tmp_path):
    path = model.save_pretrained(tmp_path / "dm")
    assert (path / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert (path / "scheduler" / "scheduler_config.json").is_file()
    loaded = DiffusionCoverGenerator.from_pretrained(path, device="cpu")
    assert loaded.config == model.config
    kw = dict(num_inference_steps=3, generator=None)
    a = model.sample("retro", 2, **{**kw, "generator": _gen(4)})
    b = loaded.sample("retro", 2, **{**kw, "generator": _gen(4)})
    assert np.array_equal(a, b)
    same = DiffusionCoverGenerator.from_pretrained(path, config=model.config, device="cpu")
    assert same.config == model.config


def test_load_errors(model, tmp_path):
    path = model.save_pretrained(tmp_path / "dm")
    with pytest.raises(CheckpointError, match="saved with another config: image_size"):
        DiffusionCoverGenerator.from_pretrained(path, config=DiffusionConfig.tiny(image_size=64))
    with pytest.raises(CheckpointNotFoundError):
        DiffusionCoverGenerator.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(ValueError):  # CheckpointNotFoundError is a ValueError too
        DiffusionCoverGenerator.from_pretrained(tmp_path / "nowhere")
    w = path / "unet" / "diffusion_pytorch_model.safetensors"
    w.write_bytes(w.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="corrupt"):
        DiffusionCoverGenerator.from_pretrained(path)
