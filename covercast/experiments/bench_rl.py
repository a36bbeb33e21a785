"""Speed benchmarks of the learners (figures, not tests).

* :func:`bench_throughput`: training throughput (env-steps/s, rollout + update) of GRU-PPO and
  sb3-contrib RecurrentPPO (and optionally SB3 PPO, or RecurrentPPO with GRU-PPO's network
  size, ``recurrent-ppo-64``) on the same vector env, same users, same seed, same rollout
  length, epochs and minibatches, in the same process, one after the other (``--repeats``
  runs them in turn several times and reports medians), with the time split into rollouts
  and updates.
* :func:`bench_backends`: the cost of one PPO update on the same rollout with this project's
  CleanRL-style ``nn.GRU`` loop and with torchrl's Python components (``GRUModule`` in recurrent
  mode + ``ProbabilisticActor`` + ``ClipPPOLoss`` + ``GAE``): the measurement behind the choice
  written in :mod:`covercast.agents.gru_ppo`.

``python -m covercast.experiments.bench_rl [--num-envs 64] [--steps 20000] [--repeats 3]
[--agents gru-ppo recurrent-ppo recurrent-ppo-64] [--backends]`` writes ``bench_rl.csv`` and
``config.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from covercast._io import atomic_write_csv, atomic_write_text, check_int

__all__ = ["SB3_BENCH_AGENTS", "bench_throughput", "bench_backends", "main"]


#: Library learners of :func:`bench_throughput` and the SB3 keyword arguments they train with.
#: ``recurrent-ppo`` is sb3-contrib's default ``MlpLstmPolicy`` (the issue's reference: separate
#: actor and critic LSTMs of 256 units); ``recurrent-ppo-64`` matches GRU-PPO's network size
#: (one LSTM of 64 units shared by actor and critic), the closest like-for-like network.
SB3_BENCH_AGENTS: dict[str, tuple[str, dict[str, Any]]] = {
    "ppo": ("ppo", {}),
    "recurrent-ppo": ("recurrent-ppo", {}),
    "recurrent-ppo-64": ("recurrent-ppo", {"policy_kwargs": {
        "lstm_hidden_size": 64, "shared_lstm": True, "enable_critic_lstm": False}}),
}


def _warm_up(agents: Sequence[str]) -> None:
    """Pay the one-time import costs before any clock starts.

    The first ``torch.optim.Adam`` of a process imports ``torch._dynamo`` (about a second):
    unwarmed, that second is charged to whichever learner runs first. The SB3 modules are
    imported here for the same reason.
    """
    import torch

    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])
    if any(a in SB3_BENCH_AGENTS for a in agents):
        import sb3_contrib  # noqa: F401
        import stable_baselines3  # noqa: F401


@contextmanager
def _timed_methods(klass: type, names: Sequence[str], acc: dict[str, float]) -> Iterator[None]:
    """Add the seconds spent in ``klass.<name>`` to ``acc[name]`` while the block runs.

    Each method is wrapped where it is defined (the first class of ``klass``'s MRO that holds
    it), not changed, and restored afterwards.
    """
    saved = []
    for name in names:
        owner = next(k for k in klass.__mro__ if name in k.__dict__)
        saved.append((owner, name, owner.__dict__[name]))

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                acc[name] += time.perf_counter() - t0
        return timed

    try:
        for owner, name, fn in saved:
            setattr(owner, name, wrap(name, fn))
        yield
    finally:
        for owner, name, fn in saved:
            setattr(owner, name, fn)


def _run_one(name: str, cfg: Any, progress: bool) -> dict[str, float]:
    """Train one learner on ``cfg``: seconds in all, in rollouts and in updates; env-steps."""
    from covercast.agents.gru_ppo import GRUPPOTrainer

    if name == "gru-ppo":
        names: tuple[str, str] = ("_rollout", "_update")
        klass: type = GRUPPOTrainer
    else:
        from covercast.agents.sb3 import _import_sb3, train_sb3

        names = ("collect_rollouts", "train")
        algo, kw = SB3_BENCH_AGENTS[name]
        klass = _import_sb3(algo)
    acc = dict.fromkeys(names, 0.0)
    t0 = time.perf_counter()
    with _timed_methods(klass, names, acc):
        if name == "gru-ppo":
            tr = GRUPPOTrainer(cfg, progress=progress)
            tr.train()
            done = tr.global_step
        else:
            done = int(train_sb3(algo, cfg, progress=progress, **kw).model.num_timesteps)
    sec = time.perf_counter() - t0
    rollout_s, update_s = acc[names[0]], acc[names[1]]
    return {"env_steps": done, "seconds": sec, "rollout_s": rollout_s, "update_s": update_s,
            "other_s": sec - rollout_s - update_s}


def bench_throughput(num_envs: int = 64, steps: int = 20_000, *, horizon_days: float = 7.0,
                     env_id: str = "covercast/PopulationVector-v0", seed: int = 0,
                     agents: Sequence[str] = ("gru-ppo", "recurrent-ppo"),
                     num_steps: int = 168, repeats: int = 1,
                     progress: bool = False) -> pd.DataFrame:
    """Env-steps per second of training, per agent, on the same env (one row per agent).

    Every agent trains for ``steps`` env-steps (rounded up to whole rollouts of
    ``num_steps * num_envs``) on the same env, users and seed, with the same rollout length,
    4 epochs x 4 minibatches, one torch thread; the one-time import costs are paid before any
    clock starts (:func:`_warm_up`). ``seconds`` is the whole ``train`` call (construction,
    rollouts, updates, logging); ``rollout_s`` and ``update_s`` are the time spent collecting
    rollouts (``GRUPPOTrainer._rollout``, SB3 ``collect_rollouts``) and in the PPO updates
    (``_update``, SB3 ``train``). With ``repeats`` > 1 the agents run in turn ``repeats``
    times and every column is the median over the repeats (a shared machine's load then
    weighs on all agents alike).
    """
    from covercast.agents.gru_ppo import GRUPPOConfig

    check_int(repeats, "repeats")
    for name in agents:
        if name != "gru-ppo" and name not in SB3_BENCH_AGENTS:
            raise ValueError(f"Unknown agent {name!r}; use gru-ppo or one of "
                             f"{sorted(SB3_BENCH_AGENTS)}.")
    _warm_up(agents)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in agents}
    for _ in range(repeats):
        for name in agents:
            cfg = GRUPPOConfig(env_id=env_id, num_envs=num_envs, horizon_days=horizon_days,
                               total_steps=steps, num_steps=num_steps, seed=seed,
                               num_minibatches=4, update_epochs=4, torch_threads=1,
                               tensorboard=False)
            runs[name].append(_run_one(name, cfg, progress))
    rows: list[dict[str, Any]] = []
    for name in agents:
        r = pd.DataFrame(runs[name]).median()
        rows.append({"agent": name, "env_id": env_id, "num_envs": num_envs,
                     "num_steps": num_steps, "epochs": 4, "minibatches": 4,
                     "repeats": repeats, "env_steps": int(r["env_steps"]),
                     "seconds": float(r["seconds"]), "rollout_s": float(r["rollout_s"]),
                     "update_s": float(r["update_s"]), "other_s": float(r["other_s"]),
                     "env_steps_per_s": float(r["env_steps"] / r["seconds"])})
    df = pd.DataFrame(rows)
    if "gru-ppo" in set(df["agent"]):
        ref = df.loc[df["agent"] == "gru-ppo"].iloc[0]
        df["gru_ppo_speedup"] = ref["env_steps_per_s"] / df["env_steps_per_s"]
        df["rollout_speedup"] = df["rollout_s"] / df["env_steps"] / (
            ref["rollout_s"] / ref["env_steps"])
        df["update_speedup"] = df["update_s"] / df["env_steps"] / (
            ref["update_s"] / ref["env_steps"])
    return df


def bench_backends(num_envs: int = 64, num_steps: int = 168, *, repeats: int = 3,
                   seed: int = 0) -> pd.DataFrame:
    """Seconds per PPO update (4 epochs x 4 minibatches of whole sequences) on one rollout of
    the population vector env, with the ``nn.GRU`` loop and with torchrl's components.

    Both use the same network sizes (embed 64 -> GRU 64 -> heads) and the same rollout.
    """
    import torch
    from tensordict import TensorDict
    from tensordict.nn import TensorDictModule, TensorDictSequential
    from torch import nn
    from torchrl.modules import GRUModule, ProbabilisticActor, ValueOperator

    from covercast.agents.gru_ppo import GRUPPOConfig, GRUPPOTrainer

    cfg = GRUPPOConfig(env_id="covercast/PopulationVector-v0", num_envs=num_envs,
                       horizon_days=7, num_steps=num_steps, total_steps=num_envs * num_steps,
                       seed=seed, tensorboard=False)
    tr = GRUPPOTrainer(cfg, progress=False)
    t0 = time.perf_counter()
    batch, _ = tr._rollout()
    rollout_s = time.perf_counter() - t0
    rows = []
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        tr._update(batch)
        times.append(time.perf_counter() - t0)
    rows.append({"backend": "nn.GRU (covercast)", "update_s": float(np.median(times)),
                 "rollout_s": rollout_s})

    # torchrl: the same network as TensorDict modules, data laid out [B, T]
    n_act = tr.n_actions
    embed = TensorDictModule(nn.Sequential(nn.Linear(40, 64), nn.Tanh()),
                             in_keys=["observation"], out_keys=["embed"])
    gru = GRUModule(input_size=64, hidden_size=64, in_key="embed", out_key="features",
                    default_recurrent_mode=True)
    head = TensorDictModule(nn.Linear(64, n_act), in_keys=["features"], out_keys=["logits"])
    actor = ProbabilisticActor(TensorDictSequential(embed, gru, head), in_keys=["logits"],
                               distribution_class=torch.distributions.Categorical,
                               return_log_prob=True)
    critic = ValueOperator(TensorDictSequential(
        TensorDictModule(nn.Sequential(nn.Linear(40, 64), nn.Tanh()), in_keys=["observation"],
                         out_keys=["embed"]),
        GRUModule(input_size=64, hidden_size=64, in_key="embed", out_key="features",
                  default_recurrent_mode=True),
        TensorDictModule(nn.Linear(64, 1), in_keys=["features"], out_keys=["state_value"])),
        in_keys=["observation"])
    t_len = batch["obs"].shape[0]
    obs = batch["obs"].transpose(0, 1).contiguous()
    starts = batch["starts"].transpose(0, 1).bool().unsqueeze(-1)
    nxt_done = torch.cat([batch["starts"][1:], torch.zeros(1, num_envs)], 0).transpose(0, 1)
    td = TensorDict({
        "observation": obs, "is_init": starts,
        "action": batch["actions"].transpose(0, 1).contiguous(),
        "sample_log_prob": batch["logprobs"].transpose(0, 1).contiguous(),
        "action_log_prob": batch["logprobs"].transpose(0, 1).contiguous(),
        "next": TensorDict({"observation": obs, "is_init": starts,
                            "reward": torch.zeros(num_envs, t_len, 1),
                            "done": nxt_done.bool().unsqueeze(-1),
                            "terminated": nxt_done.bool().unsqueeze(-1)},
                           batch_size=[num_envs, t_len])},
        batch_size=[num_envs, t_len])
    td["advantage"] = batch["advantages"].transpose(0, 1).unsqueeze(-1).contiguous()
    td["value_target"] = batch["returns"].transpose(0, 1).unsqueeze(-1).contiguous()
    td.refine_names(None, "time")
    # torchrl 0.14.1's ClipPPOLoss and GAE fail on these [B, T] tensordicts with a recurrent
    # GRUModule ("requires the input tensordict to have at least one batch dim (time). Got a
    # 0-d tensordict"): the same clipped loss is written here on top of the torchrl modules.
    params = list(actor.parameters()) + list(critic.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    times = []
    status = "ok"
    try:
        _torchrl_update(actor, critic, td, opt, num_envs, repeats, times)
    except (ValueError, RuntimeError) as e:
        status = f"failed: {str(e).splitlines()[0][:160]}"
    rows.append({"backend": "torchrl (GRUModule+ProbabilisticActor)",
                 "update_s": float(np.median(times)) if times else float("nan"),
                 "rollout_s": float("nan"), "status": status})
    rows[0]["status"] = "ok"
    df = pd.DataFrame(rows)
    df["num_envs"], df["num_steps"] = num_envs, num_steps
    df["relative_update_cost"] = df["update_s"] / df["update_s"].iloc[0]
    return df


def _torchrl_update(actor: Any, critic: Any, td: Any, opt: Any, num_envs: int, repeats: int,
                    times: list[float]) -> None:
    """PPO epochs on the torchrl modules (appends the seconds of each repeat to ``times``)."""
    import torch

    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(4):
            perm = torch.randperm(num_envs)
            for mb in perm.chunk(4):
                sub = td[mb].exclude("next", "embed", "features", "logits")
                sub.refine_names(None, "time")
                old_logp = sub["sample_log_prob"]
                dist = actor.get_dist(sub)
                logp = dist.log_prob(sub["action"])
                value = critic(sub)["state_value"].squeeze(-1)
                ratio = (logp - old_logp).exp()
                adv = sub["advantage"].squeeze(-1)
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
                pg = torch.max(-adv * ratio, -adv * ratio.clamp(0.8, 1.2)).mean()
                vl = 0.5 * ((value - sub["value_target"].squeeze(-1)) ** 2).mean()
                loss = pg + 0.5 * vl - 0.01 * dist.entropy().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
        times.append(time.perf_counter() - t0)

def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m covercast.experiments.bench_rl",
                                description="GRU-PPO vs library learners: training speed")
    p.add_argument("--num-envs", type=int, default=64)
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--num-steps", type=int, default=168)
    p.add_argument("--env", default="covercast/PopulationVector-v0")
    p.add_argument("--agents", nargs="+", default=["gru-ppo", "recurrent-ppo"],
                   help=f"gru-ppo and/or {', '.join(SB3_BENCH_AGENTS)}")
    p.add_argument("--repeats", type=int, default=1,
                   help="run the agents in turn this many times; report medians")
    p.add_argument("--backends", action="store_true",
                   help="also time one update with torchrl's components vs nn.GRU")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="reports/bench_rl")
    a = p.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    # SB3's progress bar needs rich (the bench extra); without it, train without the bars
    progress = importlib.util.find_spec("rich") is not None
    if not progress:
        print("(no progress bars: SB3's needs `rich`, in the bench extra: "
              "pip install -e \".[bench]\")")
    df = bench_throughput(a.num_envs, a.steps, env_id=a.env, agents=a.agents,
                          num_steps=a.num_steps, seed=a.seed, repeats=a.repeats,
                          progress=progress)
    print(df.to_string(index=False))
    atomic_write_csv(df, out / "bench_rl.csv")
    if a.backends:
        bk = bench_backends(a.num_envs, a.num_steps, seed=a.seed)
        print(bk.to_string(index=False))
        atomic_write_csv(bk, out / "bench_backends.csv")
    atomic_write_text(out / "config.json", json.dumps(vars(a), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
