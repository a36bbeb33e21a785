"""Speed benchmarks of the learners (figures, not tests).

* :func:`bench_throughput`: training throughput (env-steps/s, rollout + update) of GRU-PPO and
  sb3-contrib RecurrentPPO (and optionally SB3 PPO) on the same vector env, same users, same
  seed, in the same process, one after the other.
* :func:`bench_backends`: the cost of one PPO update on the same rollout with this project's
  CleanRL-style ``nn.GRU`` loop and with torchrl's Python components (``GRUModule`` in recurrent
  mode + ``ProbabilisticActor`` + ``ClipPPOLoss`` + ``GAE``): the measurement behind the choice
  written in :mod:`covercast.agents.gru_ppo`.

``python -m covercast.experiments.bench_rl [--num-envs 64] [--steps 20000] [--backends]``
writes ``bench_rl.csv`` and ``config.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from covercast._io import atomic_write_csv
from covercast.simulators.params import atomic_write_text

__all__ = ["bench_throughput", "bench_backends", "main"]


def bench_throughput(num_envs: int = 64, steps: int = 20_000, *, horizon_days: float = 7.0,
                     env_id: str = "covercast/PopulationVector-v0", seed: int = 0,
                     agents: Sequence[str] = ("gru-ppo", "recurrent-ppo"),
                     num_steps: int = 168, progress: bool = False) -> pd.DataFrame:
    """Env-steps per second of training, per agent, on the same env (one row per agent).

    Every agent trains for ``steps`` env-steps (rounded up to whole rollouts of
    ``num_steps * num_envs``) with 4 epochs x 4 minibatches, one torch thread.
    """
    from covercast.agents.gru_ppo import GRUPPOConfig, GRUPPOTrainer
    from covercast.agents.sb3 import train_sb3

    rows: list[dict[str, Any]] = []
    for name in agents:
        cfg = GRUPPOConfig(env_id=env_id, num_envs=num_envs, horizon_days=horizon_days,
                           total_steps=steps, num_steps=num_steps, seed=seed,
                           tensorboard=False)
        t0 = time.perf_counter()
        if name == "gru-ppo":
            tr = GRUPPOTrainer(cfg, progress=progress)
            tr.train()
            done = tr.global_step
        elif name in ("ppo", "recurrent-ppo"):
            train_sb3(name, cfg, progress=progress)
            per = num_steps * num_envs
            done = -(-steps // per) * per
        else:
            raise ValueError(f"Unknown agent {name!r}; use gru-ppo, ppo or recurrent-ppo.")
        sec = time.perf_counter() - t0
        rows.append({"agent": name, "env_id": env_id, "num_envs": num_envs, "env_steps": done,
                     "seconds": sec, "env_steps_per_s": done / sec})
    df = pd.DataFrame(rows)
    if "gru-ppo" in set(df["agent"]):
        ref = float(df.loc[df["agent"] == "gru-ppo", "env_steps_per_s"].iloc[0])
        df["gru_ppo_speedup"] = ref / df["env_steps_per_s"]
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
    p.add_argument("--agents", nargs="+", default=["gru-ppo", "recurrent-ppo"])
    p.add_argument("--backends", action="store_true",
                   help="also time one update with torchrl's components vs nn.GRU")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="reports/bench_rl")
    a = p.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    df = bench_throughput(a.num_envs, a.steps, env_id=a.env, agents=a.agents,
                          num_steps=a.num_steps, seed=a.seed, progress=True)
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
