"""GRU-PPO: the loop runs on every env, losses are finite, resume reproduces, predict carries the
GRU state across episode boundaries, and it learns a one-active-hour timing task."""

from __future__ import annotations

import csv
import dataclasses
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from covercast.agents.gru_ppo import (  # noqa: E402
    CSV_COLUMNS,
    EVAL_COLUMNS,
    GRUPolicy,
    GRUPPOAgent,
    GRUPPOConfig,
    GRUPPOTrainer,
    policy_inputs,
    previous_actions,
)
from covercast.envs.observation import OBS_DIM  # noqa: E402
from covercast.experiments.bench_learning import ONE_HOUR_TASK, one_active_hour_params  # noqa: E402
from covercast.simulators.params import default_params, peaked_params  # noqa: E402

ENVS = ["covercast/PopulationVector-v0", "covercast/PushTiming-v0", "covercast/CoverStyle-v0",
        "covercast/PushSchedule-v0"]


def tiny(env_id: str = "covercast/PopulationVector-v0", **kw) -> GRUPPOConfig:
    base = dict(env_id=env_id, num_envs=4, horizon_days=1, total_steps=4 * 24 * 2,
                num_minibatches=2, update_epochs=2, embed_size=16, hidden_size=16,
                tensorboard=False)
    base.update(kw)
    return GRUPPOConfig(**base)


@pytest.mark.parametrize("env_id", ENVS)
def test_loop_runs_and_losses_are_finite(env_id):
    tr = GRUPPOTrainer(tiny(env_id), progress=False)
    rows = tr.train()
    assert len(rows) == tr.num_iterations >= 2
    for row in rows:
        for k in ("policy_loss", "value_loss", "entropy", "approx_kl"):
            assert np.isfinite(row[k]), (k, row)
        assert row["episodes"] >= 1
    assert tr.global_step == tr.num_iterations * tr.batch_size
    # the policy moved
    fresh = GRUPPOTrainer(tiny(env_id), progress=False)
    moved = [not torch.equal(a, b) for a, b in zip(tr.policy.parameters(),
                                                   fresh.policy.parameters(), strict=True)]
    assert any(moved)


def test_same_seed_same_run_other_seed_differs():
    a = GRUPPOTrainer(tiny(), progress=False)
    a.train()
    b = GRUPPOTrainer(tiny(), progress=False)
    b.train()
    c = GRUPPOTrainer(tiny(seed=1), progress=False)
    c.train()
    for pa, pb in zip(a.policy.parameters(), b.policy.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.policy.parameters(),
                                                         c.policy.parameters(), strict=True))


@pytest.mark.parametrize("prev_action_input", [True, False])
def test_resume_reproduces_the_uninterrupted_run(tmp_path, prev_action_input):
    params = default_params()
    cfg = tiny(total_steps=4 * 24 * 3, prev_action_input=prev_action_input)
    full = GRUPPOTrainer(cfg, params=params, progress=False)
    full.train()
    part = GRUPPOTrainer(cfg, params=params, out=tmp_path / "run", progress=False)
    part.train(iterations=1)
    ck = tmp_path / "run" / "checkpoint"
    assert {"model.safetensors", "optimizer.pt", "config.json", "state.json",
            "params.json"} <= {p.name for p in ck.iterdir()}
    resumed = GRUPPOTrainer.load(ck, progress=False)
    assert resumed.iteration == 1
    assert resumed.policy.prev_action_input is prev_action_input
    resumed.train()
    assert resumed.iteration == full.iteration == 3
    for pf, pr in zip(full.policy.parameters(), resumed.policy.parameters(), strict=True):
        torch.testing.assert_close(pf, pr, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(full.obs_rms.mean, resumed.obs_rms.mean)
    assert [r["episode_return"] for r in full.history] == \
        [r["episode_return"] for r in resumed.history]
    # the CSV log has a header and one row per iteration of that folder's run
    with open(tmp_path / "run" / "progress.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(CSV_COLUMNS) and len(rows) == 1


def test_predict_carries_state_and_resets_at_episode_start(tmp_path):
    tr = GRUPPOTrainer(tiny(), out=tmp_path, progress=False)
    tr.train(iterations=1)
    agent = GRUPPOAgent.load(tmp_path / "checkpoint", seed=0)
    assert agent.mode == "schedule" and agent.n_actions == 6
    rng = np.random.default_rng(0)
    obs = rng.random((3, OBS_DIM)).astype(np.float32)
    a0, h0 = agent.predict(obs, deterministic=True)
    # the state is the hidden state followed by the one-hot of the returned action
    assert agent.policy.prev_action_input and agent.state_size == 16 + 6
    assert a0.shape == (3,) and h0.shape == (3, 22) and np.abs(h0[:, :16]).sum() > 0
    np.testing.assert_array_equal(h0[:, 16:], np.eye(6)[a0])
    # the state matters: the same obs with the carried state gives another hidden state
    _, h1 = agent.predict(obs, state=h0, episode_start=np.zeros(3, bool))
    assert not np.allclose(h1, h0)
    # episode_start zeroes exactly the starting rows' memory
    _, h2 = agent.predict(obs, state=h0, episode_start=np.array([True, False, False]))
    np.testing.assert_allclose(h2[0, :16], h0[0, :16], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h2[1:, :16], h1[1:, :16], rtol=1e-5, atol=1e-6)
    # the previous action is an input: another carried action, another hidden state
    other = h0.copy()
    other[:, 16:] = np.roll(h0[:, 16:], 1, axis=1)
    _, h3 = agent.predict(obs, state=other, episode_start=np.zeros(3, bool))
    assert not np.allclose(h3[:, :16], h1[:, :16])
    # a single observation returns an int; probabilities sum to one
    a, h = agent.predict(obs[0])
    assert isinstance(a, int) and h.shape == (1, 22)
    p = agent.action_probabilities(obs, state=h0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="hidden state"):
        agent.predict(obs, state=np.zeros((2, 22)))
    with pytest.raises(ValueError, match="previous action"):
        agent.predict(obs, state=np.zeros((3, 16)))     # the hidden state alone


def test_predict_through_evaluate_across_episodes():
    from covercast.agents.evaluate import evaluate

    tr = GRUPPOTrainer(tiny("covercast/PushTiming-v0"), progress=False)
    tr.train(iterations=1)
    agent = tr.agent(seed=0)
    df = evaluate(agent, "covercast/PushTiming-v0", episodes=3, seed=0,
                  env_kwargs={"horizon_days": 1})
    assert len(df) == 3 and (df["length"] <= 24).all()
    again = evaluate(tr.agent(seed=0), "covercast/PushTiming-v0", episodes=3, seed=0,
                     env_kwargs={"horizon_days": 1})
    assert df["return"].tolist() == again["return"].tolist()


def test_bad_config_is_refused_with_the_field_named():
    with pytest.raises(ValueError, match="num_minibatches"):
        GRUPPOConfig(num_envs=2, num_minibatches=4).validate()
    with pytest.raises(ValueError, match="env_id"):
        GRUPPOConfig(env_id="CartPole-v1").validate()
    with pytest.raises(ValueError, match="gamma"):
        GRUPPOConfig(gamma=1.5).validate()
    with pytest.raises(ValueError, match="Unknown GRUPPOConfig fields"):
        GRUPPOConfig.from_dict({"lr": 1.0})
    with pytest.raises(ValueError, match="JSON"):
        GRUPPOConfig(env_kwargs={"params": default_params()}).validate()


@pytest.mark.parametrize("prev_action_input", [False, True])
def test_unroll_equals_stepping_with_resets(prev_action_input):
    torch.manual_seed(0)
    net = GRUPolicy(OBS_DIM, 3, 8, 8, prev_action_input=prev_action_input)
    t_len, b = 7, 4
    obs = torch.randn(t_len, b, OBS_DIM)
    starts = torch.zeros(t_len, b)
    starts[0] = 1
    starts[3, 1] = 1
    starts[5, 2] = 1
    actions = torch.randint(0, 3, (t_len, b))
    prev = previous_actions(actions, 3) if prev_action_input else None
    logits, values, h_last = net.unroll(obs, starts, net.initial_state(b), prev)
    h = net.initial_state(b)
    for t in range(t_len):
        p = None if t == 0 or not prev_action_input else \
            torch.nn.functional.one_hot(actions[t - 1], 3).float()
        lg, v, h = net.step(obs[t], h, starts[t], p)
        torch.testing.assert_close(lg, logits[t])
        torch.testing.assert_close(v, values[t])
    torch.testing.assert_close(h, h_last)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_learns_the_one_active_hour_task(seed):
    """With its default config (the task sets only the environment and the budget), GRU-PPO
    learns to push at the active hour only within 60 k steps, on every seed: its greedy
    return is close to the push-at-12-only policy's on the same users. Measured over seeds
    0-19 (``python benchmarks/bench_learning.py``): all 20 reached >= 0.99 of it."""
    from covercast.agents.baselines import StaticScheduler
    from covercast.agents.evaluate import evaluate

    params = one_active_hour_params(12)
    kw = ONE_HOUR_TASK["env_kwargs"]
    cfg = GRUPPOConfig(**ONE_HOUR_TASK, tensorboard=False, seed=seed)
    tr = GRUPPOTrainer(cfg, params=params, progress=False)
    tr.train()
    assert tr.collapse is None
    agent = tr.agent(seed=0)
    env_kwargs = {"params": params, "horizon_days": 2, **kw}
    ep = 200
    got = evaluate(agent, "covercast/PushTiming-v0", episodes=ep, seed=7, env_kwargs=env_kwargs,
                   deterministic=True)
    best = evaluate(StaticScheduler(mode="timing", hours=(12,)), "covercast/PushTiming-v0",
                    episodes=ep, seed=7, env_kwargs=env_kwargs)
    assert best["return"].mean() > 0.8
    assert got["return"].mean() >= 0.9 * best["return"].mean()
    assert got["pushes"].mean() <= 2.2          # two active hours in two days


def cli_parser():
    """``covercast train`` / ``evaluate`` on a parser of their own."""
    import argparse

    from covercast.experiments.agents_cli import add_subcommands

    parser = argparse.ArgumentParser()
    add_subcommands(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_train_resume_and_evaluate(tmp_path, capsys):
    parser = cli_parser()
    run = tmp_path / "run"
    args = parser.parse_args(["train", "--agent", "gru-ppo", "--env", "covercast/PushTiming-v0",
                              "--steps", "96", "--num-envs", "4", "--horizon-days", "1",
                              "--max-pushes-per-day", "1.5", "--out", str(run), "--quiet"])
    assert args.func(args) == 0
    assert (run / "checkpoint" / "model.safetensors").is_file()
    cfg = json.loads((run / "checkpoint" / "config.json").read_text())
    assert cfg["max_pushes_per_day"] == 1.5 and cfg["max_opt_outs_per_day"] is None
    with pytest.raises(ValueError, match="constrained training is GRU-PPO's"):
        args = parser.parse_args(["train", "--agent", "ppo", "--max-opt-outs-per-day", "0.01",
                                  "--out", str(tmp_path / "sb3"), "--quiet"])
        args.func(args)
    args = parser.parse_args(["train", "--env", "covercast/PushTiming-v0", "--steps", "192",
                              "--resume", "--out", str(run), "--quiet"])
    assert args.func(args) == 0
    state = (run / "checkpoint" / "state.json").read_text()
    assert '"iteration": 2' in state
    args = parser.parse_args(["evaluate", "--agent", str(run), "--env",
                              "covercast/PushTiming-v0", "--episodes", "2", "--horizon-days",
                              "1", "--out", str(tmp_path / "ev"), "--quiet"])
    assert args.func(args) == 0
    assert (tmp_path / "ev" / "episodes.csv").is_file()
    with pytest.raises(ValueError, match="neither a run folder"):
        from covercast.experiments.agents_cli import load_agent
        load_agent(str(tmp_path / "nothing"), "covercast/PushTiming-v0")


def test_untrained_policy_pushes_with_the_initial_push_prob():
    from covercast.agents.gru_ppo import GRUPPOConfig, GRUPPOTrainer
    from covercast.envs.observation import OBS_DIM

    cfg = GRUPPOConfig(env_id="covercast/PushSchedule-v0", num_envs=2, horizon_days=1,
                       total_steps=48, num_minibatches=2, tensorboard=False,
                       initial_push_prob=0.1)
    tr = GRUPPOTrainer(cfg, progress=False)
    agent = tr.agent(seed=0)
    probs = agent.action_probabilities(np.zeros((3, OBS_DIM), dtype=np.float32))
    assert probs.shape == (3, 6)
    np.testing.assert_allclose(probs[:, 0], 0.9, atol=0.02)
    np.testing.assert_allclose(probs[:, 1:], 0.02, atol=0.01)
    with pytest.raises(ValueError, match="initial_push_prob"):
        GRUPPOConfig(initial_push_prob=1.5).validate()


def _segment_unroll(net, obs, starts, h0, prev=None):
    """The reference unroll (autograd through ``nn.GRU``): one call per stretch between time
    indices where some row starts an episode, the starting rows' state (and previous action)
    zeroed there."""
    if net.prev_action_input:
        obs = torch.cat([obs, prev * (1.0 - starts).unsqueeze(-1)], dim=-1)
    x = net.embed(obs)
    t_len = obs.shape[0]
    cut = torch.nonzero(starts.any(dim=1)).flatten().tolist()
    bounds = sorted({0, *cut, t_len})
    h, outs = h0, []
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        h = h * (1.0 - starts[a]).unsqueeze(-1)
        out, hn = net.gru(x[a:b], h.unsqueeze(0))
        h = hn[0]
        outs.append(out)
    z = torch.cat(outs, dim=0)
    return net.actor(z), net.critic(z).squeeze(-1), h


@pytest.mark.parametrize("p_start,prev_action_input",
                         [(0.0, False), (0.02, False), (0.3, False), (0.02, True), (0.3, True)])
def test_unroll_and_its_gradients_equal_autograd_through_nn_gru(p_start, prev_action_input):
    """The hand-written backpropagation through time gives the outputs and the gradients
    (observations, initial state, every weight) of autograd through ``nn.GRU``, with and
    without the previous-action input."""
    gen = torch.Generator().manual_seed(int(p_start * 100))
    torch.manual_seed(1)
    net = GRUPolicy(OBS_DIM, 6, 12, 10, prev_action_input=prev_action_input)
    t_len, b = 37, 9
    obs = torch.randn(t_len, b, OBS_DIM, generator=gen)
    prev = previous_actions(torch.randint(0, 6, (t_len, b), generator=gen), 6) \
        if prev_action_input else None
    starts = (torch.rand(t_len, b, generator=gen) < p_start).float()
    starts[0, : b // 2] = 1.0               # some rows keep a carried initial state
    h0 = torch.randn(b, 10, generator=gen)
    w = [torch.randn(t_len, b, 6, generator=gen), torch.randn(t_len, b, generator=gen),
         torch.randn(b, 10, generator=gen)]
    results = []
    for fn in (_segment_unroll, GRUPolicy.unroll):
        net.zero_grad()
        o, h = obs.clone().requires_grad_(True), h0.clone().requires_grad_(True)
        out = fn(net, o, starts, h, prev)
        sum((y * wi).sum() for y, wi in zip(out, w, strict=True)).backward()
        results.append([y.detach() for y in out] + [o.grad, h.grad]
                       + [p.grad.clone() for p in net.parameters()])
    ref, new = results
    assert new[4].abs().sum() > 0           # the initial state's gradient is not trivially 0
    for r, g in zip(ref, new, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-5)
    # without gradients the same outputs come from the plain forward
    with torch.no_grad():
        for r, g in zip(ref[:3], net.unroll(obs, starts, h0, prev), strict=True):
            torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("prev_action_input", [True, False])
def test_rollout_log_probs_and_values_match_the_update_unroll(prev_action_input):
    """The rollout's stored log-probabilities and values are those the update recomputes from
    the stored (normalised) observations, starts and previous actions: the first PPO ratio
    is 1."""
    # peaked-v0: its opt-out hazard makes a 2-day rollout of 6 users pushed often restart
    # some of them
    tr = GRUPPOTrainer(tiny(num_envs=6, horizon_days=2, initial_push_prob=0.6,
                            prev_action_input=prev_action_input), params=peaked_params(),
                       progress=False)
    batch, _ = tr._rollout()
    assert batch["starts"][0].eq(1).all() and batch["starts"][1:].sum() > 0  # opt-outs
    assert ("prev_actions" in batch) is prev_action_input
    if prev_action_input:       # a perturbed previous action changes the outputs
        with torch.no_grad():
            rolled = batch["prev_actions"].roll(1, dims=-1)
            lg_other, _, _ = tr.policy.unroll(batch["obs"], batch["starts"],
                                              tr.policy.initial_state(6), rolled)
    with torch.no_grad():
        logits, values, _ = tr.policy.unroll(batch["obs"], batch["starts"],
                                             tr.policy.initial_state(6),
                                             batch.get("prev_actions"))
    if prev_action_input:
        assert not torch.allclose(lg_other, logits)
    logp = torch.log_softmax(logits, -1).gather(-1, batch["actions"].unsqueeze(-1))[..., 0]
    torch.testing.assert_close(logp, batch["logprobs"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(values, batch["values"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(batch["returns"], batch["advantages"] + batch["values"])


def test_rollout_samples_actions_with_the_policy_probabilities():
    """Inverse-CDF sampling: the action counts of a rollout match the summed policy
    probabilities (chi-square over the 6 actions, far from the 0.1 % tail)."""
    from scipy import stats

    tr = GRUPPOTrainer(tiny(num_envs=64, horizon_days=2, initial_push_prob=0.5),
                       progress=False)
    batch, _ = tr._rollout()
    with torch.no_grad():
        logits, _, _ = tr.policy.unroll(batch["obs"], batch["starts"],
                                        tr.policy.initial_state(64))
    expected = torch.softmax(logits.double(), -1).sum(dim=(0, 1)).numpy()
    counts = np.bincount(batch["actions"].flatten().numpy(), minlength=6)
    chi2 = float((((counts - expected) ** 2) / expected).sum())
    assert chi2 < stats.chi2.ppf(0.999, df=5), (counts, expected)


def test_bench_throughput_splits_time_and_restores_the_timed_methods():
    pytest.importorskip("sb3_contrib")
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

    from covercast.experiments.bench_rl import bench_throughput

    before = (GRUPPOTrainer._rollout, GRUPPOTrainer._update, RecurrentPPO.train,
              OnPolicyAlgorithm.collect_rollouts, RecurrentPPO.__dict__.get("collect_rollouts"))
    df = bench_throughput(num_envs=4, steps=64, horizon_days=1, num_steps=8, repeats=2,
                          agents=("gru-ppo", "recurrent-ppo-64"))
    after = (GRUPPOTrainer._rollout, GRUPPOTrainer._update, RecurrentPPO.train,
             OnPolicyAlgorithm.collect_rollouts, RecurrentPPO.__dict__.get("collect_rollouts"))
    assert after == before
    assert list(df["agent"]) == ["gru-ppo", "recurrent-ppo-64"]
    assert (df["env_steps"] == 64).all() and (df["repeats"] == 2).all()
    assert ((df["rollout_s"] > 0) & (df["update_s"] > 0)).all()
    assert (df["rollout_s"] + df["update_s"] <= df["seconds"]).all()
    assert df.loc[0, "gru_ppo_speedup"] == 1.0
    with pytest.raises(ValueError, match="a2c"):
        bench_throughput(agents=("a2c",))


def test_predict_step_by_step_equals_unroll_across_episodes():
    """``predict`` carrying its state (hidden state and previous action) through episode
    starts gives the hidden states of one unroll over the same observations, starts and the
    actions predict returned."""
    tr = GRUPPOTrainer(tiny(), progress=False)
    tr.train(iterations=1)
    agent = tr.agent(seed=3)
    rng = np.random.default_rng(1)
    t_len, b = 9, 3
    obs = rng.normal(size=(t_len, b, OBS_DIM)).astype(np.float32)
    starts = np.zeros((t_len, b), dtype=bool)
    starts[0] = True
    starts[4, 0] = starts[6, 2] = True
    state, acts, states = None, [], []
    for t in range(t_len):
        a, state = agent.predict(obs[t], state=state, episode_start=starts[t])
        acts.append(a)
        states.append(state)
    acts_t = torch.as_tensor(np.stack(acts))
    xs = torch.from_numpy(policy_inputs(obs.reshape(-1, OBS_DIM), tr.obs_rms, True)
                          .reshape(t_len, b, -1))
    for t in range(t_len):
        with torch.no_grad():
            _, _, h_last = agent.policy.unroll(
                xs[: t + 1], torch.from_numpy(starts[: t + 1].astype(np.float32)),
                agent.policy.initial_state(b), previous_actions(acts_t[: t + 1], 6))
        np.testing.assert_allclose(states[t][:, :16], h_last.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(states[t][:, 16:], np.eye(6)[acts[t]])


def _checkpoint_without(tmp_path, key: str, **config):
    """A one-iteration run's checkpoint whose config.json lacks ``key`` (as one written before
    the field existed): ``(trainer, checkpoint folder, the config dict written)``."""
    tr = GRUPPOTrainer(tiny(**config), out=tmp_path, progress=False)
    tr.train(iterations=1)
    ck = tmp_path / "checkpoint"
    cfg = json.loads((ck / "config.json").read_text())
    del cfg[key]
    (ck / "config.json").write_text(json.dumps(cfg))
    return tr, ck, cfg


def test_checkpoint_without_the_prev_action_key_loads_as_before(tmp_path):
    """A config.json written before ``prev_action_input`` existed loads as False (the policy of
    an old checkpoint has no previous-action input); a fresh config defaults to True."""

    assert GRUPPOConfig().prev_action_input is True
    tr, ck, cfg = _checkpoint_without(tmp_path, "prev_action_input", prev_action_input=False)
    assert GRUPPOConfig.from_checkpoint_dict(cfg).prev_action_input is False
    assert GRUPPOConfig.from_dict(cfg).prev_action_input is True
    agent = GRUPPOAgent.load(ck, seed=0)
    assert not agent.policy.prev_action_input and agent.state_size == 16
    obs = np.random.default_rng(0).random((2, OBS_DIM)).astype(np.float32)
    np.testing.assert_allclose(agent.action_probabilities(obs),
                               tr.agent().action_probabilities(obs), rtol=1e-6)
    resumed = GRUPPOTrainer.load(ck, progress=False)
    assert resumed.config.prev_action_input is False
    resumed.train(iterations=1)
    with pytest.raises(ValueError, match="prev_action_input"):
        GRUPPOConfig(prev_action_input="yes").validate()


def test_entropy_bonus_push_style_is_push_plus_style_entropy():
    logits = torch.randn(7, 3, 6, generator=torch.Generator().manual_seed(0))
    logp = torch.log_softmax(logits, -1)
    p = logp.exp().numpy().astype(np.float64)
    pw = p[..., 0]
    q = p[..., 1:] / (1 - pw)[..., None]
    h_push = -(pw * np.log(pw) + (1 - pw) * np.log(1 - pw))
    h_style = -(q * np.log(q)).sum(-1)
    h_joint = -(p * np.log(p)).sum(-1)
    np.testing.assert_allclose(h_joint, h_push + (1 - pw) * h_style, rtol=1e-5)   # chain rule
    tr = GRUPPOTrainer(tiny(entropy_bonus="push-style"), progress=False)
    np.testing.assert_allclose(tr._bonus(logits, logp).numpy(), h_push + h_style, rtol=1e-5)
    tr = GRUPPOTrainer(tiny(entropy_bonus="joint"), progress=False)
    np.testing.assert_allclose(tr._bonus(logits, logp).numpy(), h_joint, rtol=1e-5)
    with pytest.raises(ValueError, match="entropy_bonus"):
        GRUPPOConfig(entropy_bonus="style").validate()
    old = {k: v for k, v in tiny().to_dict().items()
           if k not in ("entropy_bonus", "anneal_ent", "critic_init_gain")}
    cfg = GRUPPOConfig.from_checkpoint_dict(old)     # a config from before issue 15
    assert (cfg.entropy_bonus, cfg.anneal_ent, cfg.critic_init_gain) == ("joint", False, 1.0)
    with pytest.raises(ValueError, match="anneal_ent"):
        GRUPPOConfig(anneal_ent="yes").validate()
    with pytest.raises(ValueError, match="critic_init_gain"):
        GRUPPOConfig(critic_init_gain=0.0).validate()
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="ent_anneal_end"):
            GRUPPOConfig(ent_anneal_end=bad).validate()


@pytest.mark.parametrize("anneal,end,want", [(True, 1.0, [0.01, 0.0075, 0.005, 0.0025]),
                                             (True, 0.5, [0.01, 0.005, 0.0, 0.0]),
                                             (False, 1.0, [0.01] * 4)])
def test_exploration_bonus_schedule(anneal, end, want):
    tr = GRUPPOTrainer(tiny(total_steps=4 * 24 * 4, anneal_ent=anneal, ent_anneal_end=end),
                       progress=False)
    got = []
    for it in range(4):
        tr.iteration = it
        got.append(tr._ent_coef())
    np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize("gain", [0.01, 1.0])
def test_critic_init_gain_sets_the_spread_of_the_untrained_values(gain):
    tr = GRUPPOTrainer(tiny(critic_init_gain=gain), progress=False)
    w = tr.policy.critic.weight.detach()
    assert float(w.norm()) == pytest.approx(gain, rel=1e-4)    # orthogonal: one row of norm gain


# ------------------------------------------------------------ constrained training (Lagrangian)
def test_constraint_fields_are_checked():
    with pytest.raises(ValueError, match="max_pushes_per_day"):
        GRUPPOConfig(max_pushes_per_day=0).validate()
    with pytest.raises(ValueError, match="max_opt_outs_per_day"):
        GRUPPOConfig(max_opt_outs_per_day=float("nan")).validate()
    with pytest.raises(ValueError, match="must not exceed"):
        GRUPPOConfig(min_pushes_per_day=3.0, max_pushes_per_day=2.0).validate()
    with pytest.raises(ValueError, match="push times are given"):
        GRUPPOConfig(env_id="covercast/CoverStyle-v0", max_pushes_per_day=1.0).validate()
    with pytest.raises(ValueError, match="max_opt_outs_per_day.*push times are given"):
        GRUPPOConfig(env_id="covercast/CoverStyle-v0", max_opt_outs_per_day=0.01).validate()
    with pytest.raises(ValueError, match="lagrange_lr"):
        GRUPPOConfig(lagrange_lr=0.0).validate()
    GRUPPOConfig(env_id="covercast/PushTiming-v0", max_opt_outs_per_day=0.01).validate()


def test_multipliers_charge_the_rewards_and_follow_the_violation():
    tr = GRUPPOTrainer(tiny(max_pushes_per_day=1.0, min_pushes_per_day=0.5,
                            max_opt_outs_per_day=0.01, lagrange_lr=0.1), progress=False)
    t_len, n = 24, 4                       # one user-day per user (hourly slots)
    pushed = np.zeros((t_len, n), np.float32)
    pushed[[3, 9, 15], :] = 1.0            # 3 pushes a day: above the limit of 1
    opted = np.zeros((t_len, n), np.float32)
    opted[5, 0] = 1.0                      # 1 opt-out in 4 user-days: 0.25 > 0.01
    rewards = np.ones((t_len, n), np.float32)
    tr.lagrange.update(max_pushes=0.2, min_pushes=0.05, opt_outs=1.5)
    stats = tr._apply_constraints(rewards, pushed, opted)
    assert stats["pushes_per_day"] == pytest.approx(3.0)
    assert stats["opt_outs_per_day"] == pytest.approx(0.25)
    assert stats["lambda_max_pushes"] == 0.2 and stats["lambda_opt_outs"] == 1.5
    # the opt-out multiplier is charged on the pushes: 1 opt-out over 12 pushes
    expected = 1.0 - (0.2 - 0.05 + 1.5 * 1 / 12) * pushed
    assert (1.0 - expected).sum() == pytest.approx((0.2 - 0.05) * 12 + 1.5 * 1)
    np.testing.assert_allclose(rewards, expected, rtol=1e-6)
    # dual ascent: lambda += lr * scale * (rate - limit) / limit, clipped at 0
    assert tr.lagrange["max_pushes"] == pytest.approx(0.2 + 0.1 * 0.1 * (3.0 - 1.0) / 1.0)
    assert tr.lagrange["min_pushes"] == pytest.approx(max(0.0, 0.05 - 0.1 * 0.1 * 5.0))
    assert tr.lagrange["opt_outs"] == pytest.approx(1.5 + 0.1 * 5.0 * (0.25 - 0.01) / 0.01)
    # unconstrained: the rewards are left alone and the multipliers stay 0
    free = GRUPPOTrainer(tiny(), progress=False)
    r = np.ones((t_len, n), np.float32)
    free._apply_constraints(r, pushed, opted)
    assert np.all(r == 1.0) and set(free.lagrange.values()) == {0.0}


def test_push_limit_lowers_the_push_rate():
    """With a binding push limit the multiplier grows and the policy pushes less than the same
    run without the limit."""
    kw = dict(num_envs=16, total_steps=16 * 24 * 30, learning_rate=3e-3, anneal_lr=False,
              initial_push_prob=0.25)
    free = GRUPPOTrainer(tiny(**kw), progress=False)
    free_rows = free.train()
    held = GRUPPOTrainer(tiny(max_pushes_per_day=1.0, lagrange_lr=2.0, **kw), progress=False)
    held_rows = held.train()
    assert held_rows[0]["pushes_per_day"] > 4.0             # starts far above the limit
    assert held.lagrange["max_pushes"] > 0.0
    late = np.mean([r["pushes_per_day"] for r in held_rows[-5:]])
    assert late < 0.5 * held_rows[0]["pushes_per_day"]
    assert late < np.mean([r["pushes_per_day"] for r in free_rows[-5:]])


def test_resume_keeps_the_multipliers(tmp_path):
    cfg = tiny(total_steps=4 * 24 * 3, max_pushes_per_day=0.5, max_opt_outs_per_day=0.01)
    full = GRUPPOTrainer(cfg, progress=False)
    full.train()
    part = GRUPPOTrainer(cfg, out=tmp_path / "run", progress=False)
    part.train(iterations=1)
    resumed = GRUPPOTrainer.load(tmp_path / "run" / "checkpoint", progress=False)
    assert resumed.lagrange == part.lagrange and resumed.lagrange["max_pushes"] > 0
    resumed.train()
    assert resumed.lagrange == full.lagrange
    for pf, pr in zip(full.policy.parameters(), resumed.policy.parameters(), strict=True):
        torch.testing.assert_close(pf, pr, rtol=1e-6, atol=1e-7)


# ------------------------------------------------------------------ validation, best policy
def _weights(policy) -> list:
    return [p.detach().clone() for p in policy.parameters()]


def test_validation_keeps_the_best_policy_and_leaves_training_unchanged(tmp_path):
    cfg = tiny(total_steps=4 * 24 * 3, eval_every=1, eval_users=32, eval_horizon_days=3.0,
               eval_deterministic=False, learning_rate=0.02,
               initial_push_prob=0.3)
    seen = {}
    tr = GRUPPOTrainer(cfg, out=tmp_path / "run", progress=False)
    tr.train(callback=lambda row: seen.setdefault(int(row["iteration"]), _weights(tr.policy)))
    plain = GRUPPOTrainer(dataclasses.replace(cfg, eval_every=0), progress=False)
    plain.train()
    # validating draws from no stream of the run: the same weights as without it
    for a, b in zip(tr.policy.parameters(), plain.policy.parameters(), strict=True):
        assert torch.equal(a, b)
    assert plain.evals == [] and plain.best is None
    assert [int(e["iteration"]) for e in tr.evals] == [1, 2, 3]
    assert len({e["return"] for e in tr.evals}) > 1          # the policies differ
    best = max(tr.evals, key=lambda e: (e["feasible"], e["return"]))
    assert tr.best == best
    agent = tr.agent(which="best")
    for a, b in zip(agent.policy.parameters(), seen[int(best["iteration"])], strict=True):
        assert torch.equal(a, b)
    # re-validating the best policy gives its row again (same users, same seed)
    with open(tmp_path / "run" / "eval.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(EVAL_COLUMNS) and len(rows) == 3
    assert float(rows[-1]["return"]) == pytest.approx(tr.evals[-1]["return"])
    # the checkpoint holds the best policy as well as the final one
    loaded = GRUPPOAgent.load(tmp_path / "run" / "checkpoint", which="best")
    for a, b in zip(loaded.policy.parameters(), agent.policy.parameters(), strict=True):
        assert torch.equal(a, b)
    final = GRUPPOAgent.load(tmp_path / "run" / "checkpoint")
    for a, b in zip(final.policy.parameters(), tr.policy.parameters(), strict=True):
        assert torch.equal(a, b)


def test_validation_ranks_feasible_policies_first():
    cfg = tiny(eval_every=1, eval_users=32, eval_horizon_days=3.0,
               eval_deterministic=False, learning_rate=0.02, initial_push_prob=0.3,
               max_pushes_per_day=1e-6)
    tr = GRUPPOTrainer(cfg, progress=False)
    tr.train()
    # every policy that pushes breaks the limit: the best is the highest return among them
    assert all(e["feasible"] == 0.0 for e in tr.evals if e["pushes_per_day"] > 0)
    assert tr.best["return"] == max(e["return"] for e in tr.evals)
    # a feasible policy outranks any infeasible one, whatever their returns
    tr.best = {**tr.best, "feasible": 0.0, "return": -1e9}
    tr.config = dataclasses.replace(tr.config, max_pushes_per_day=None)
    row = tr.validate()
    assert row["feasible"] == 1.0 and tr.best == row
    tr.best = {**row, "return": row["return"] + 1.0}
    assert tr.validate() is not None and tr.best["return"] == row["return"] + 1.0


def test_resume_keeps_the_validations_and_the_best_policy(tmp_path):
    cfg = tiny(total_steps=4 * 24 * 3, eval_every=1, eval_users=32, eval_horizon_days=3.0,
               eval_deterministic=False, learning_rate=0.02,
               initial_push_prob=0.3)
    full = GRUPPOTrainer(cfg, progress=False)
    full.train()
    part = GRUPPOTrainer(cfg, out=tmp_path / "run", progress=False)
    part.train(iterations=2)
    resumed = GRUPPOTrainer.load(tmp_path / "run" / "checkpoint", progress=False)
    assert resumed.evals == part.evals and resumed.best == part.best
    resumed.train()
    assert [e["return"] for e in resumed.evals] == [e["return"] for e in full.evals]
    assert resumed.best["iteration"] == full.best["iteration"]
    for a, b in zip(resumed.agent(which="best").policy.parameters(),
                    full.agent(which="best").policy.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("env_id", ["covercast/PushTiming-v0", "covercast/CoverStyle-v0"])
def test_validation_runs_on_single_user_envs(env_id):
    tr = GRUPPOTrainer(tiny(env_id, total_steps=4 * 24, eval_every=1, eval_users=2),
                       progress=False)
    tr.train()
    assert len(tr.evals) == tr.num_iterations and all(np.isfinite(e["return"]) for e in tr.evals)
    assert tr.agent(which="best").mode == tr.agent().mode


def test_best_policy_errors_name_the_fix(tmp_path):
    tr = GRUPPOTrainer(tiny(total_steps=4 * 24), out=tmp_path / "run", progress=False)
    tr.train()
    with pytest.raises(ValueError, match="eval_every"):
        tr.agent(which="best")
    with pytest.raises(ValueError, match="eval_every"):
        GRUPPOAgent.load(tmp_path / "run" / "checkpoint", which="best")
    with pytest.raises(ValueError, match="`which`"):
        tr.agent(which="last")
    for bad in ({"eval_every": -1}, {"eval_users": 0}, {"eval_horizon_days": 0.0},
                {"eval_horizon_days": float("nan")}, {"eval_deterministic": "yes"}):
        with pytest.raises(ValueError, match=f"`{next(iter(bad))}`"):
            tiny(**bad).validate()


def test_push_threshold_decodes_greedy_actions(monkeypatch):
    """``push_threshold`` t: push when P(any push) > t, with the most likely style; None: the
    most likely action; sampling is unaffected."""
    agent = GRUPPOTrainer(tiny(), progress=False).agent(seed=3)
    probs = np.array([[0.7, 0.1, 0.05, 0.05, 0.05, 0.05],    # spread thin: argmax never pushes
                      [0.4, 0.3, 0.3, 0.0, 0.0, 0.0],        # 0.6 to push, split over two styles
                      [0.2, 0.1, 0.6, 0.1, 0.0, 0.0],
                      [0.9, 0.02, 0.02, 0.02, 0.02, 0.02]])
    logits = torch.log(torch.tensor(probs) + 1e-12)
    h = torch.zeros(4, agent.policy.hidden_size)
    monkeypatch.setattr(agent, "_logits", lambda x, state, start: (logits, h))
    obs = np.zeros((4, OBS_DIM), dtype=np.float32)
    expected = {None: [0, 0, 2, 0], 0.5: [0, 1, 2, 0], 0.2: [1, 1, 2, 0], 0.05: [1, 1, 2, 1]}
    for t, want in expected.items():
        agent.push_threshold = t
        a, _ = agent.predict(obs, deterministic=True)
        assert a.tolist() == want, t
    agent._rng = np.random.default_rng(0)
    agent.push_threshold = 0.2
    sampled = agent.predict(obs)[0]
    agent._rng = np.random.default_rng(0)
    agent.push_threshold = None
    assert np.array_equal(agent.predict(obs)[0], sampled)
    assert agent.config()["push_threshold"] is None
    for bad in (0.0, 1.0, "0.3", True):
        with pytest.raises(ValueError, match="push_threshold"):
            agent.push_threshold = bad
    for bad in ((0.5, 1.2), 0.3, ("a",)):
        with pytest.raises(ValueError, match="push_thresholds"):
            tiny(push_thresholds=bad).validate()


def test_best_policy_greedy_decoding_is_calibrated_on_validation_users(tmp_path):
    cfg = tiny(total_steps=4 * 24 * 2, eval_every=1, eval_users=16, eval_horizon_days=2.0,
               initial_push_prob=0.3, push_thresholds=(0.5, 0.2))
    tr = GRUPPOTrainer(cfg, out=tmp_path / "run", progress=False)
    tr.train()
    rows = tr.threshold_evals
    assert np.isnan(rows[0]["push_threshold"]) and [r["push_threshold"] for r in rows[1:]] == \
        [0.5, 0.2]
    # untrained, 0.3 to push spread over 5 styles: the most likely action and t = 0.5 never
    # push, t = 0.2 pushes
    assert rows[0]["pushes_per_day"] == 0 and rows[1]["pushes_per_day"] == 0
    assert rows[2]["pushes_per_day"] > 0
    chosen = max(rows, key=lambda r: (r["feasible"], r["return"]))
    t = None if np.isnan(chosen["push_threshold"]) else chosen["push_threshold"]
    assert tr.best["push_threshold"] == t
    assert tr.best["calibrated_return"] == chosen["return"]
    assert tr.agent(which="best").push_threshold == t and tr.agent().push_threshold is None
    loaded = GRUPPOAgent.load(tmp_path / "run" / "checkpoint", which="best")
    assert loaded.push_threshold == t
    assert GRUPPOAgent.load(tmp_path / "run" / "checkpoint").push_threshold is None
    with open(tmp_path / "run" / "push_threshold.csv") as f:
        assert len(list(csv.DictReader(f))) == 3
    resumed = GRUPPOTrainer.load(tmp_path / "run" / "checkpoint", progress=False)
    same = lambda a, b: json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # noqa: E731
    assert same(resumed.best, tr.best) and same(resumed.threshold_evals, rows)
    # without thresholds (or with sampled validation) the best policy keeps the plain argmax
    plain = GRUPPOTrainer(dataclasses.replace(cfg, push_thresholds=()), progress=False)
    plain.train()
    assert plain.threshold_evals == [] and plain.agent(which="best").push_threshold is None


def test_final_policy_greedy_decoding_is_calibrated_without_validation(tmp_path):
    """Without ``eval_every`` the final weights' greedy decoding is calibrated at the end of
    the run; a never-push flag from the greedy actions alone stands only when no calibrated
    rule pushes either."""
    cfg = tiny(total_steps=4 * 24 * 2, eval_users=16, initial_push_prob=0.3,
               push_thresholds=(0.5, 0.2))
    tr = GRUPPOTrainer(cfg, out=tmp_path / "run", progress=False)
    tr.train()
    rows = tr.threshold_evals
    assert len(rows) == 3 and rows[2]["pushes_per_day"] > 0 == rows[0]["pushes_per_day"]
    chosen = max(rows, key=lambda r: (r["feasible"], r["return"]))
    t = None if np.isnan(chosen["push_threshold"]) else chosen["push_threshold"]
    assert tr.final_push_threshold == t and tr.agent().push_threshold == t
    assert GRUPPOAgent.load(tmp_path / "run" / "checkpoint").push_threshold == t
    assert (tr.collapse == "never-push") == (chosen["pushes_per_day"] < 0.05)
    # training on clears the calibration of the weights it changes, and calibrates again
    resumed = GRUPPOTrainer.load(tmp_path / "run" / "checkpoint", progress=False,
                                 total_steps=4 * 24 * 3)
    assert resumed.final_push_threshold == t
    resumed.train(iterations=1)
    assert len(resumed.threshold_evals) == 3


def test_cli_train_with_validation_and_evaluate_the_best(tmp_path):
    from covercast.experiments.agents_cli import load_agent

    parser = cli_parser()
    run = tmp_path / "run"
    args = parser.parse_args(["train", "--env", "covercast/PushTiming-v0", "--steps", "192",
                              "--num-envs", "4", "--horizon-days", "1", "--eval-every", "1",
                              "--eval-users", "3", "--out", str(run), "--quiet"])
    assert args.func(args) == 0
    with open(run / "eval.csv") as f:
        assert len(list(csv.DictReader(f))) == 2
    args = parser.parse_args(["evaluate", "--agent", str(run), "--env",
                              "covercast/PushTiming-v0", "--episodes", "2", "--horizon-days",
                              "1", "--best", "--out", str(tmp_path / "ev"), "--quiet"])
    assert args.func(args) == 0
    assert json.loads((tmp_path / "ev" / "config.json").read_text())["policy"] == "best"
    with pytest.raises(ValueError, match="GRU-PPO run folder"):
        load_agent("static", "covercast/PushTiming-v0", which="best")
    with pytest.raises(ValueError, match="keeps its final policy"):
        args = parser.parse_args(["train", "--agent", "ppo", "--eval-every", "2",
                                  "--out", str(tmp_path / "sb3"), "--quiet"])
        args.func(args)


def test_collapse_detector_fires_on_a_policy_that_never_pushes(tmp_path):
    """A policy that (nearly) never pushes is flagged after ``collapse_patience`` rollouts:
    a PolicyCollapseWarning, the ``collapse`` column of progress.csv and ``trainer.collapse``."""
    from covercast.agents.gru_ppo import PolicyCollapseWarning

    cfg = tiny("covercast/PushTiming-v0", total_steps=4 * 24 * 4, initial_push_prob=1e-6,
               learning_rate=1e-6, collapse_patience=2)
    tr = GRUPPOTrainer(cfg, out=tmp_path, progress=False)
    with pytest.warns(PolicyCollapseWarning, match="never-push"):
        rows = tr.train()
    assert [r["collapse"] for r in rows] == [0.0, -1.0, -1.0, -1.0]
    assert tr.collapse == "never-push"
    with open(tmp_path / "progress.csv") as f:
        assert [float(r["collapse"]) for r in csv.DictReader(f)] == [0.0, -1.0, -1.0, -1.0]
    # the flag survives a checkpoint
    assert GRUPPOTrainer.load(tmp_path / "checkpoint", progress=False).collapse == "never-push"


def test_collapse_detector_fires_on_a_policy_that_always_pushes():
    from covercast.agents.gru_ppo import PolicyCollapseWarning

    cfg = tiny("covercast/PushTiming-v0", total_steps=4 * 24 * 3, initial_push_prob=0.999,
               learning_rate=1e-6, collapse_patience=1)
    tr = GRUPPOTrainer(cfg, params=default_params(), progress=False)
    with pytest.warns(PolicyCollapseWarning, match="always-push"):
        rows = tr.train()
    assert rows[0]["collapse"] == 1.0 and tr.collapse == "always-push"


def test_collapse_detector_is_quiet_on_a_policy_that_pushes_sometimes():
    """The untrained policy pushes about twice a day (sampled): no flag while training; at the
    end its greedy actions never push, which the last iteration flags."""
    import warnings

    from covercast.agents.gru_ppo import PolicyCollapseWarning

    tr = GRUPPOTrainer(tiny("covercast/PushTiming-v0", total_steps=4 * 24 * 3,
                            learning_rate=1e-6), progress=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rows = tr.train(iterations=2)
    assert [r["collapse"] for r in rows] == [0.0, 0.0]
    assert not [w for w in caught if issubclass(w.category, PolicyCollapseWarning)]
    assert all(0.3 < r["pushes_per_day"] < 6 for r in rows)
    with pytest.warns(PolicyCollapseWarning, match="greedy actions push 0 times"):
        last = tr.train()
    assert last[-1]["greedy_pushes_per_day"] == 0.0 and tr.collapse == "never-push"
    with pytest.raises(ValueError, match="collapse_max_push_share"):
        GRUPPOConfig(collapse_max_push_share=1.5).validate()


def test_cross_entropy_bonus_pulls_towards_the_reference_without_vanishing():
    """The default bonus is the mean log-probability of the uniform reference (push or not
    1/2 each, then each style 1/n): its gradient on the logits stays finite as a push
    probability goes to 0, where the entropy's vanishes."""
    tr = GRUPPOTrainer(tiny(), progress=False)             # schedule layout, default bonus
    assert tr.config.entropy_bonus == "cross-entropy"
    logits = torch.randn(5, 2, 6, generator=torch.Generator().manual_seed(1))
    logp = torch.log_softmax(logits, -1)
    p = logp.exp().numpy().astype(np.float64)
    q = p[..., 1:] / (1 - p[..., :1])
    want = 0.5 * (np.log(p[..., 0]) + np.log(1 - p[..., 0])) + np.log(q).mean(-1)
    np.testing.assert_allclose(tr._bonus(logits, logp).numpy(), want, rtol=1e-5)
    # a policy that nearly never pushes: d bonus / d push logit stays ~ 1/2 (u - pi), the
    # entropy's ~ 0
    for kind, lo, hi in (("cross-entropy", 0.4, 0.6), ("joint", 0.0, 0.01)):
        tr = GRUPPOTrainer(tiny("covercast/PushTiming-v0", entropy_bonus=kind), progress=False)
        z = torch.tensor([[12.0, 0.0]], requires_grad=True)       # P(push) ~ 6e-6
        tr._bonus(z, torch.log_softmax(z, -1)).sum().backward()
        assert lo <= float(z.grad[0, 1]) <= hi, (kind, z.grad)


def test_hour_one_hot_input_and_old_checkpoints(tmp_path):
    """The policy reads the normalised observation and the standardised one-hot of the hour
    of day; a config.json written before ``hour_one_hot`` existed loads as False (the same
    probabilities as before saving)."""

    from covercast.envs.observation import clock_features

    obs = np.zeros((4, OBS_DIM), dtype=np.float32)       # float32, as the envs give them
    for i, hour in enumerate((0.0, 12.0, 11.5, 23.5)):
        obs[i, :5] = clock_features(hour, 0)
    x = policy_inputs(obs, None, True)
    assert x.shape == (4, OBS_DIM + 24)
    assert x[:, OBS_DIM:].argmax(axis=1).tolist() == [0, 12, 11, 23]
    np.testing.assert_allclose(x[:, OBS_DIM:].mean(axis=1), 0.0, atol=1e-6)   # standardised
    np.testing.assert_allclose(x[:, OBS_DIM:].std(axis=1), 1.0, rtol=1e-5)
    assert policy_inputs(obs, None, False).shape == (4, OBS_DIM)
    tr, ck, _ = _checkpoint_without(tmp_path, "hour_one_hot", hour_one_hot=False)
    agent = GRUPPOAgent.load(ck)
    assert agent.hour_one_hot is False and agent.policy.obs_dim == OBS_DIM
    o = np.random.default_rng(0).random((2, OBS_DIM)).astype(np.float32)
    np.testing.assert_allclose(agent.action_probabilities(o), tr.agent().action_probabilities(o),
                               rtol=1e-6)
    assert GRUPPOConfig().hour_one_hot is True
    with pytest.raises(ValueError, match="hour_one_hot"):
        GRUPPOConfig(hour_one_hot=1).validate()


def test_default_budget_is_one_million_steps_in_config_and_cli():
    """The default budget is the one measured not to collapse (1 M; 200 k left 16 of 40 suite
    runs never pushing), and ``covercast train`` uses the same default without importing torch
    to build its parser."""
    import argparse

    from covercast.experiments.agents_cli import DEFAULT_STEPS, add_subcommands

    assert GRUPPOConfig().total_steps == DEFAULT_STEPS == 1_000_000
    parser = argparse.ArgumentParser()
    add_subcommands(parser.add_subparsers())
    assert parser.parse_args(["train", "--out", "runs/x"]).steps == DEFAULT_STEPS
