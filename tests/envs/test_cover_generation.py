"""covercast/CoverGeneration-v0: checkers, determinism, the render cache, rewards, bad input."""

import dataclasses
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from covercast.envs.cover_generation import (
    CoverGenerationEnv,
    GenerationReward,
    action_to_weights,
    quantise_weights,
)
from covercast.simulators.params import peaked_params

ENV_ID = "covercast/CoverGeneration-v0"


def _proc(**kw) -> CoverGenerationEnv:
    return CoverGenerationEnv(generator="procedural", cohort_size=16, response_hours=6, **kw)


# ------------------------------------------------------------------------------ quantisation
def test_quantised_weights_lie_on_the_simplex_grid():
    rng = np.random.default_rng(0)
    for _ in range(200):
        w = action_to_weights(rng.uniform(-1, 1, 5), 4.0)
        assert w.sum() == pytest.approx(1.0)
        counts = quantise_weights(w, 4)
        assert sum(counts) == 4 and min(counts) >= 0
        assert np.abs(np.array(counts) / 4 - w).max() <= 0.25 + 1e-12
    pure = quantise_weights(action_to_weights(np.array([1, -1, -1, -1, -1.0]), 4.0), 4)
    assert pure == (4, 0, 0, 0, 0)
    assert quantise_weights(np.full(5, 0.2), 4) == (1, 1, 1, 1, 0)   # ties: lower index first


# ------------------------------------------------------------------------------ checkers
def test_gymnasium_and_sb3_checkers_pass_with_the_procedural_generator():
    env = _proc()
    check_env(env, skip_render_check=True)
    sb3 = pytest.importorskip("stable_baselines3.common.env_checker")
    sb3.check_env(_proc(), warn=True)


def test_checkers_pass_with_a_tiny_learned_generator():
    torch = pytest.importorskip("torch")
    from covercast.generators.encoder import CoverEncoder, CoverEncoderConfig
    from covercast.generators.vae_iat import VAEIAT, VAEIATConfig

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = VAEIAT(VAEIATConfig.tiny(), seed=0)
        enc = CoverEncoder(CoverEncoderConfig.tiny(), seed=0)
        env = CoverGenerationEnv(generator=model, encoder=enc, cohort_size=8, response_hours=3,
                                 quality="confidence")
        check_env(env, skip_render_check=True)
        sb3 = pytest.importorskip("stable_baselines3.common.env_checker")
        sb3.check_env(CoverGenerationEnv(generator=model, encoder=enc, cohort_size=8,
                                         response_hours=3, quality="confidence"))
        obs, _ = env.reset(seed=1)
        _, r, _, _, info = env.step(np.zeros(5, dtype=np.float32))
        assert np.isfinite(r) and 0.0 <= info["quality"] <= 1.0
        assert env.cover(info["cover_key"]).image.shape == (32, 32, 3)
    finally:
        torch.set_num_threads(n)


def test_registered_under_its_id_with_render_modes():
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point="covercast.envs.cover_generation:CoverGenerationEnv",
                     max_episode_steps=28)
    env = gym.make(ENV_ID, generator="procedural", cohort_size=8, response_hours=2,
                   render_mode="rgb_array")
    env.reset(seed=0)
    env.step(env.action_space.sample())
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape == (32, 32, 3)
    text = gym.make(ENV_ID, generator="procedural", cohort_size=8, response_hours=2,
                    render_mode="ansi")
    text.reset(seed=0)
    text.step(np.ones(5, dtype=np.float32))
    assert "mix=" in text.render() and "opened=" in text.render()


# ------------------------------------------------------------------------------ behaviour
def _rollout(env: CoverGenerationEnv, seed: int, steps: int = 6):
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    trace = [obs]
    for _ in range(steps):
        obs, r, term, trunc, info = env.step(rng.uniform(-1, 1, 5).astype(np.float32))
        assert not term and not trunc
        trace.append((obs, r, info["opened"], info["dwell_s"], info["cover_key"]))
    return trace


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, tuple):
        return all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def test_same_seed_same_rollout_whatever_the_cache_holds():
    env = _proc()
    first = _rollout(env, 7)
    again = _rollout(env, 7)                 # now every cover comes from the cache
    fresh = _rollout(_proc(), 7)
    assert all(_same(a, b) for a, b in zip(first, again, strict=True))
    assert all(_same(a, b) for a, b in zip(first, fresh, strict=True))
    other = _rollout(_proc(), 8)
    assert not all(_same(a, b) for a, b in zip(first, other, strict=True))


def test_identical_requests_hit_the_cache_and_eviction_respects_its_size():
    env = _proc(cache_size=2)
    env.reset(seed=0)
    seg_topic = env._context[1]
    a = np.array([1, -1, -1, -1, -1], dtype=np.float32)
    near = np.array([0.95, -1, -0.9, -1, -1], dtype=np.float32)   # same grid point
    assert env.weights_for(a).tolist() == env.weights_for(near).tolist()
    c1 = env.cover(quantise_weights(action_to_weights(a, 4.0), 4), seg_topic)
    c2 = env.cover(quantise_weights(action_to_weights(near, 4.0), 4), seg_topic)
    assert c1 is c2 and env.cache_info()["hits"] == 1 and env.cache_info()["misses"] == 1
    env.cover((0, 4, 0, 0, 0), seg_topic)
    env.cover((0, 0, 4, 0, 0), seg_topic)            # evicts the first one
    info = env.cache_info()
    assert info["size"] == 2 and info["misses"] == 3
    assert env.cover((4, 0, 0, 0, 0), seg_topic) is not c1
    assert env.cache_info()["misses"] == 4


def test_a_mixture_cover_blends_its_styles():
    env = _proc()
    pure = [env.cover(tuple(4 if i == s else 0 for i in range(5)), 0) for s in (0, 3)]
    mix = env.cover((2, 0, 0, 2, 0), 0)
    expect = (pure[0].image.astype(float) + pure[1].image) / 2
    assert np.abs(mix.image - expect).max() <= 1.0
    assert mix.features[5:].tolist() == [0.5, 0, 0, 0.5, 0]
    assert len(mix.bank) == 5 and np.array_equal(mix.bank.images[0], mix.image)


def test_the_population_prefers_covers_that_match_its_taste():
    """Night owls like dark, contrasted, noir covers: noir beats minimal on opens (on
    ``peaked-v0``, whose taste is strong enough to show it in 400 users; the calibrated
    default's best style gains only ~1.3x)."""
    params = peaked_params()
    owl = dataclasses.replace(params.segments[2], weight=1.0)
    assert owl.name == "night_owl"
    env = CoverGenerationEnv(generator="procedural", cohort_size=400, response_hours=12,
                             params=dataclasses.replace(params, segments=[owl]))
    noir = np.array([-1, -1, -1, 1, -1], dtype=np.float32)
    minimal = np.array([1, -1, -1, -1, -1], dtype=np.float32)
    opens = {}
    for name, action in (("noir", noir), ("minimal", minimal)):
        env.reset(seed=3)
        infos = [env.step(action)[4] for _ in range(6)]
        opens[name] = sum(i["opened"] for i in infos)
        rel = np.mean([i["relevance"] for i in infos])
        opens[name + "_rel"] = rel
    assert opens["noir"] > 1.3 * opens["minimal"]
    assert opens["noir_rel"] > opens["minimal_rel"]


def test_reward_terms_add_up():
    base = _proc()
    aest = _proc(w_aesthetic=2.0, w_relevance=0.5)
    a = np.array([0.2, -0.5, 0.9, -1.0, 0.0], dtype=np.float32)
    base.reset(seed=4)
    aest.reset(seed=4)
    _, r0, _, _, info = base.step(a)
    _, r1, _, _, info1 = aest.step(a)
    assert info["opened"] == info1["opened"]
    assert r1 - r0 == pytest.approx(2.0 * info["quality"] + 0.5 * info["relevance"])
    assert r0 == pytest.approx((info["opened"] + 0.1 * info["dwell_s"] / 60
                                - 5.0 * info["opted_out"]) / 16)
    custom = _proc(reward_fn=lambda r: float(r["opened"]))
    custom.reset(seed=4)
    assert custom.step(a)[1] == float(info["opened"])


def test_observation_holds_the_context():
    env = _proc()
    obs, info = env.reset(seed=0)
    s, t = info["segment"], info["topic"]
    assert obs[s] == 1 and obs[:3].sum() == 1
    assert obs[3 + t] == 1 and obs[3:9].sum() == 1
    assert obs[9] == pytest.approx(np.sin(2 * np.pi * 8 / 24), abs=1e-6)    # 08:00 Monday
    assert env.observation_space.contains(obs)


# ------------------------------------------------------------------------------ bad input
def test_bad_input_is_refused_with_the_fix():
    with pytest.raises(ValueError, match="Unknown generator 'gan'"):
        CoverGenerationEnv(generator="gan")
    with pytest.raises(ValueError, match="takes no `checkpoint`"):
        CoverGenerationEnv(generator="procedural", checkpoint="x")
    with pytest.raises(ValueError, match="grid"):
        _proc(grid=0)
    with pytest.raises(ValueError, match="push_hours"):
        _proc(push_hours=(8, 8))
    with pytest.raises(ValueError, match="not both"):
        _proc(reward_fn=lambda r: 0.0, w_dwell=1.0)
    with pytest.raises(ValueError, match="w_aesthetic"):
        _proc(w_aesthetic=-1.0)
    with pytest.raises(ValueError, match="midnight"):
        _proc(start="2026-01-05T03:00:00Z")
    env = _proc()
    with pytest.raises(gym.error.ResetNeeded):
        env.step(np.zeros(5, dtype=np.float32))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="expected \\(5,\\)"):
        env.step(np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="in \\[-1, 1\\]"):
        env.step(np.full(5, 2.0, dtype=np.float32))
    with pytest.raises(ValueError, match="options"):
        env.reset(options={"x": 1})


def test_missing_checkpoint_is_refused_before_work(tmp_path):
    pytest.importorskip("torch")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        CoverGenerationEnv(generator="vae-iat", checkpoint=tmp_path / "none")


def test_procedural_env_does_not_import_torch():
    code = ("import sys\nfrom covercast.envs.cover_generation import CoverGenerationEnv\n"
            "import numpy as np\n"
            "env = CoverGenerationEnv(generator='procedural', cohort_size=4, response_hours=2)\n"
            "env.reset(seed=0); env.step(np.zeros(5, dtype=np.float32))\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_generation_reward_validates_weights():
    with pytest.raises(ValueError, match="w_dwell"):
        GenerationReward(w_dwell=float("nan"))


def test_pickle_mid_episode_continues_identically():
    import pickle

    env = _proc()
    env.reset(seed=5)
    rng = np.random.default_rng(0)
    for _ in range(3):
        env.step(rng.uniform(-1, 1, 5).astype(np.float32))
    clone = pickle.loads(pickle.dumps(env))
    actions = rng.uniform(-1, 1, (4, 5)).astype(np.float32)
    a = [env.step(x)[:2] for x in actions]
    b = [clone.step(x)[:2] for x in actions]
    assert all(np.array_equal(x[0], y[0]) and x[1] == y[1] for x, y in zip(a, b, strict=True))


# ------------------------------------------------------------------------------ diffusion
def _tiny_topic_diffusion():
    torch = pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    from covercast.covers.attributes import DEFAULT_TOPICS
    from covercast.generators.diffusion import DiffusionConfig, DiffusionCoverGenerator
    from covercast.generators.encoder import CoverEncoder, CoverEncoderConfig

    model = DiffusionCoverGenerator(DiffusionConfig.tiny(topics=DEFAULT_TOPICS), seed=0)
    with torch.no_grad():                 # make the topic embeddings matter in an untrained net
        model.unet.class_embedding.weight.normal_(0, 1.0)
    return model, CoverEncoder(CoverEncoderConfig.tiny(), seed=0)


def test_a_topic_conditioned_diffusion_generator_gets_the_campaign_topic():
    model, enc = _tiny_topic_diffusion()
    env = CoverGenerationEnv(generator=model, encoder=enc, cohort_size=8, response_hours=3,
                             quality="confidence",
                             sample_kwargs={"num_inference_steps": 2, "eta": 1.0,
                                            "guidance_scale": 2.0, "sampler": "ddim"})
    a = env.cover((4, 0, 0, 0, 0), topic=0).image
    b = env.cover((4, 0, 0, 0, 0), topic=3).image
    assert not np.array_equal(a, b)          # one cover per (mixture, topic)
    assert env.cache_info()["misses"] == 2
    assert np.array_equal(env.cover((4, 0, 0, 0, 0), topic=0).image, a)


def test_diffusion_sample_kwargs_are_checked_before_work():
    model, enc = _tiny_topic_diffusion()
    with pytest.raises(ValueError, match="Unknown sampling option"):
        CoverGenerationEnv(generator=model, encoder=enc, sample_kwargs={"steps": 3})
    with pytest.raises(ValueError, match="`eta` must lie in"):
        CoverGenerationEnv(generator=model, encoder=enc, sample_kwargs={"eta": 2.0})


def test_prerender_fills_the_cache_and_changes_no_rollout():
    env = _proc()
    n = env.prerender()
    assert n == len(env.grid_points()) * env.n_topics == env.cache_info()["size"]
    assert len(set(env.grid_points())) == 70 and all(sum(w) == 4 for w in env.grid_points())
    fresh = _proc()
    rng = np.random.default_rng(0)
    actions = [rng.uniform(-1, 1, 5).astype(np.float32) for _ in range(4)]
    out = []
    for e in (env, fresh):
        e.reset(seed=3)
        out.append([e.step(a)[1] for a in actions])
    assert out[0] == out[1]
    assert env.cache_info()["misses"] == n            # every later step was a look-up
    with pytest.raises(ValueError, match="cache_size >= 420"):
        _proc(cache_size=10).prerender()
