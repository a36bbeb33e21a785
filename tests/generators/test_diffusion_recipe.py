"""The diffusion recipe: quality improves with training, EMA, topics, samplers, the ablation."""

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from covercast.covers.attributes import DEFAULT_STYLES, DEFAULT_TOPICS  # noqa: E402
from covercast.experiments.generator_ablation import (  # noqa: E402
    AblationConfig,
    ValidationSet,
    recipe_variants,
    run_ablation,
    score_generator,
    sweep_samplers,
)
from covercast.generators.banks import load_encoder  # noqa: E402
from covercast.generators.data import cover_dataset, fresh_cover_seed  # noqa: E402
from covercast.generators.diffusion import (  # noqa: E402
    DiffusionConfig,
    DiffusionCoverGenerator,
    DiffusionTrainConfig,
    train_diffusion,
)
from covercast.generators.evaluate import frechet_distance  # noqa: E402


def _gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def encoder():
    return load_encoder(device="cpu")


@pytest.fixture(scope="module")
def data():
    return cover_dataset(4, size=32, seed=0)


RECIPE = DiffusionConfig.tiny(prediction_type="v_prediction", rescale_betas_zero_snr=True,
                              topics=DEFAULT_TOPICS)


def test_quality_improves_with_training_not_only_the_loss(encoder, data):
    """FD to real covers (encoder features) and style accuracy get better with training."""
    real = cover_dataset(4, size=32, seed=5)
    real_feat = encoder.features(real.images)
    labels = np.repeat(np.arange(len(DEFAULT_STYLES)), 12)
    topics = (np.arange(len(labels)) % len(DEFAULT_TOPICS)).tolist()

    def score(model):
        imgs = model.sample(labels.tolist(), len(labels), topic=topics, generator=_gen(0),
                            num_inference_steps=10, eta=1.0, guidance_scale=2.0)
        acc = float(np.mean(encoder.style_probs(imgs).argmax(1) == labels))
        return frechet_distance(real_feat, encoder.features(imgs)), acc

    scores = {}
    for steps in (0, 300):
        model = DiffusionCoverGenerator(RECIPE, seed=0)
        if steps:
            res = train_diffusion(model, data, DiffusionTrainConfig(
                steps=steps, batch_size=16, lr=2e-3, warmup_steps=20, ema_decay=0.95,
                min_snr_gamma=5.0, fresh_covers=True), progress=False, device="cpu")
            loss = res.metric("loss")
            assert loss[-50:].mean() < loss[:50].mean()
        scores[steps] = score(model)
    (fd0, acc0), (fd1, acc1) = scores[0], scores[300]
    assert fd1 < 0.7 * fd0, scores
    assert acc1 > acc0 + 0.1, scores


def test_ema_training_is_deterministic_under_a_seed_and_differs_from_the_raw_weights(data):
    tc = DiffusionTrainConfig(steps=5, batch_size=8, lr=1e-3, warmup_steps=1, ema_decay=0.9,
                              min_snr_gamma=5.0, fresh_covers=True, seed=3)
    states, raw = [], []
    for _ in range(2):
        m = DiffusionCoverGenerator(RECIPE, seed=1)
        seen = {}

        def cb(step, metrics, m=m, seen=seen):
            seen["raw"] = {k: v.clone() for k, v in m.unet.state_dict().items()}

        train_diffusion(m, data, tc, progress=False, device="cpu", callback=cb)
        states.append({k: v.clone() for k, v in m.unet.state_dict().items()})
        raw.append(seen["raw"])
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    # the model ends with the EMA weights, which are not the last raw weights
    assert any(not torch.equal(states[0][k], raw[0][k]) for k in states[0])
    a = m.sample("noir", 3, topic="food", generator=_gen(4), num_inference_steps=3, eta=1.0)
    b = m.sample("noir", 3, topic="food", generator=_gen(4), num_inference_steps=3, eta=1.0)
    assert np.array_equal(a, b)


def test_fresh_covers_render_a_new_epoch(data):
    assert fresh_cover_seed(7, 0) == 7 and fresh_cover_seed(7, 1) != fresh_cover_seed(7, 2)
    m1 = DiffusionCoverGenerator(RECIPE, seed=0)
    m2 = DiffusionCoverGenerator(RECIPE, seed=0)
    per_epoch = len(data) // 60
    kw = dict(batch_size=60, lr=1e-3, warmup_steps=1, ema_decay=0.0)
    steps = per_epoch + 2          # reaches the second epoch
    train_diffusion(m1, data, DiffusionTrainConfig(steps=steps, fresh_covers=True, **kw),
                    progress=False, device="cpu")
    train_diffusion(m2, data, DiffusionTrainConfig(steps=steps, fresh_covers=False, **kw),
                    progress=False, device="cpu")
    s1, s2 = m1.unet.state_dict(), m2.unet.state_dict()
    assert any(not torch.equal(s1[k], s2[k]) for k in s1)


def test_fresh_covers_need_rendered_covers():
    from covercast.generators.data import CoverDataset

    ds = cover_dataset(1, seed=0)
    plain = CoverDataset(ds.images, ds.style, ds.topic, ds.quality, ds.styles, ds.topics)
    with pytest.raises(ValueError, match="fresh_covers"):
        train_diffusion(DiffusionCoverGenerator(RECIPE), plain,
                        DiffusionTrainConfig(steps=1, batch_size=4, fresh_covers=True),
                        progress=False, device="cpu")


def test_topic_conditioning_changes_the_cover_and_is_refused_without_topics():
    m = DiffusionCoverGenerator(RECIPE, seed=2)
    with torch.no_grad():
        for p in m.unet.class_embedding.parameters():
            p.normal_(0, 1.0)
    kw = dict(generator=_gen(0), num_inference_steps=3, eta=0.0)
    food = m.sample("noir", 2, topic="food", **kw)
    tech = m.sample("noir", 2, topic="tech", generator=_gen(0), num_inference_steps=3, eta=0.0)
    assert not np.array_equal(food, tech)
    assert m.unet.config.num_class_embeds == len(DEFAULT_STYLES) + 1 + len(DEFAULT_TOPICS) + 1
    plain = DiffusionCoverGenerator(DiffusionConfig.tiny(), seed=0)
    with pytest.raises(ValueError, match="not conditioned on topics"):
        plain.sample("noir", 1, topic="food", num_inference_steps=2)
    with pytest.raises(ValueError, match="Unknown style 'cats'"):
        m.sample("noir", 1, topic="cats", num_inference_steps=2)


def test_recipe_options_are_checked():
    with pytest.raises(ValueError, match="needs prediction_type='v_prediction'"):
        DiffusionConfig.tiny(prediction_type="epsilon", rescale_betas_zero_snr=True)
    with pytest.raises(ValueError, match="min_snr_gamma"):
        DiffusionTrainConfig(min_snr_gamma=-1.0)
    m = DiffusionCoverGenerator(DiffusionConfig.tiny())
    with pytest.raises(ValueError, match="`sampler`"):
        m.sample("noir", 1, sampler="euler")
    with pytest.raises(ValueError, match="`eta` applies to sampler='ddim' only"):
        m.sample("noir", 1, sampler="dpmsolver++", eta=0.5)


def test_min_snr_weighting_changes_the_loss_and_offset_noise_too(data):
    m = DiffusionCoverGenerator(RECIPE, seed=0)
    x, y = data.tensors()
    tp = data.topic_tensor()
    with torch.no_grad():
        base = m.loss(x[:8], y[:8], topics=tp[:8], generator=_gen(0))
        snr = m.loss(x[:8], y[:8], topics=tp[:8], generator=_gen(0), min_snr_gamma=5.0)
    assert float(snr) < float(base)      # every weight min(snr, 5) / (snr + 1) is < 1
    eps = DiffusionCoverGenerator(dataclasses.replace(RECIPE, prediction_type="epsilon",
                                                      rescale_betas_zero_snr=False), seed=0)
    with torch.no_grad():
        a = eps.loss(x[:8], y[:8], topics=tp[:8], generator=_gen(0))
        b = eps.loss(x[:8], y[:8], topics=tp[:8], generator=_gen(0), offset_noise=0.5)
    assert float(a) != float(b)


def test_sampling_options_are_saved_with_the_model(tmp_path):
    m = DiffusionCoverGenerator(DiffusionConfig.tiny(), seed=0)
    m.sampling = m.sampling_options(sampler="dpmsolver++", num_inference_steps=7,
                                    guidance_scale=1.5)
    m.save_pretrained(tmp_path / "m")
    back = DiffusionCoverGenerator.from_pretrained(tmp_path / "m", device="cpu")
    assert back.sampling == {"sampler": "dpmsolver++", "num_inference_steps": 7, "eta": 0.0,
                             "guidance_scale": 1.5}
    a = back.sample("noir", 2, generator=_gen(0))
    b = back.sample("noir", 2, generator=_gen(0), sampler="dpmsolver++", num_inference_steps=7,
                    guidance_scale=1.5, eta=0.0)
    assert np.array_equal(a, b)


def test_recipe_variants_change_one_thing_each():
    v = recipe_variants("tiny", steps=10)
    full_m, full_t = v["full"]
    assert full_m.prediction_type == "v_prediction" and full_m.rescale_betas_zero_snr
    assert full_m.topics == DEFAULT_TOPICS and full_t.fresh_covers and full_t.ema_decay > 0
    assert v["no ema"][1].ema_decay == 0 and v["no ema"][0] == full_m
    assert v["no min-snr"][1].min_snr_gamma == 0
    assert v["no topic"][0].topics == ()
    eps_m, eps_t = v["eps+offset (no v, no zero-snr)"]
    assert eps_m.prediction_type == "epsilon" and eps_t.offset_noise > 0


def test_ablation_and_sampler_sweep_write_their_tables(tmp_path, encoder):
    ref = tmp_path / "ref"
    DiffusionCoverGenerator(DiffusionConfig.tiny(), seed=0).save_pretrained(ref)
    cfg = AblationConfig(out=str(tmp_path / "abl"), variants=("full", "no ema", "no topic"),
                         arch="tiny", steps=2, batch_size=8, per_style_topic=2,
                         val_per_style_topic=2, per_style=6, num_inference_steps=2,
                         device="cpu", progress=False, references=(("before", str(ref)),))
    table = run_ablation(cfg)
    assert list(table["variant"]) == ["full", "no ema", "no topic", "before"]
    # `no ema` is the raw trajectory of `full`: a different model from full's EMA weights
    assert table.loc[0, "fd"] != table.loc[1, "fd"]
    assert {"fd", "kid", "precision", "recall", "style_accuracy", "min_style_accuracy",
            "mode_collapse", "covers_per_s", "acc_noir"} <= set(table.columns)
    again = run_ablation(cfg)          # resumes: rows already scored are kept as they are
    assert again.loc[:2, "fd"].tolist() == table.loc[:2, "fd"].tolist()
    md = (tmp_path / "abl" / "ablation.md").read_text()
    assert "NOT Inception" in md and "| full |" in md
    model_dir = tmp_path / "abl" / "models" / "full" / "model"
    res = sweep_samplers(str(model_dir), str(tmp_path / "sw"), per_style=4,
                         grid=(("ddim", 2, 1.0, 2.0), ("dpmsolver++", 2, 0.0, 1.0)),
                         val_per_style_topic=2, device="cpu")
    assert len(res["table"]) == 2
    assert res["chosen"]["sampler"] in ("ddim", "dpmsolver++")
    assert (tmp_path / "sw" / "chosen_sampler.json").is_file()


def test_score_generator_cycles_topics_for_a_topic_model(encoder):
    val = ValidationSet.build(encoder, per_style_topic=1, seed=0)
    m = DiffusionCoverGenerator(RECIPE, seed=0)
    row = score_generator(m, val, per_style=6, num_inference_steps=2)
    assert "topic_accuracy" in row and len(row["_images"]) == 6 * len(DEFAULT_STYLES)


def test_ddim_with_eta_one_survives_the_zero_snr_step():
    """At alphas_cumprod == 0, DDIM's 1 - alpha_prev - sigma^2 must stay >= 0 (else NaN)."""
    m = DiffusionCoverGenerator(DiffusionConfig.tiny(prediction_type="v_prediction",
                                                     rescale_betas_zero_snr=True), seed=0)
    sched = m.make_scheduler("ddim", 5)
    t, prev = int(sched.timesteps[0]), int(sched.timesteps[1])
    assert float(sched.alphas_cumprod[t]) == 0.0
    a_prev = float(sched.alphas_cumprod[prev])
    assert 1.0 - a_prev - float(sched._get_variance(t, prev)) > 0.0
    x = torch.randn(2, 3, 32, 32, generator=_gen(0))
    out = sched.step(torch.randn_like(x), t, x, eta=1.0, generator=_gen(1)).prev_sample
    assert torch.isfinite(out).all()


def test_sampler_sweep_cli_refuses_a_malformed_config(tmp_path, capsys):
    from covercast.experiments import generators_cli as cli

    rc = cli.main(["generators", "sampler-sweep", "--model", str(tmp_path), "--out",
                   str(tmp_path / "o"), "--configs", "ddim:20:1"])
    assert rc == 2 and "SAMPLER:STEPS:ETA:GUIDANCE" in capsys.readouterr().err
