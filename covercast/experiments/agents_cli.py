"""Entry points behind ``covercast train`` and ``covercast evaluate`` (torch imported lazily;
the commands are added to ``covercast`` by :mod:`covercast.experiments.cli`, as the other CLIs).

``covercast train --agent gru-ppo --env covercast/PushSchedule-v0 --steps N --seed S --out
runs/NAME`` trains GRU-PPO (or ``ppo`` / ``recurrent-ppo``, the stable-baselines3 references)
with a progress bar; ``--resume`` continues a GRU-PPO run from ``runs/NAME/checkpoint``.
``--eval-every K`` validates a GRU-PPO run every K iterations and keeps its best policy.
``covercast evaluate --agent runs/NAME --env ... --episodes E`` evaluates a saved agent (or a
baseline by name: random, static, heuristic, and the style bandits thompson and linucb;
``--best``: a GRU-PPO run's best validated policy) and writes ``episodes.csv`` beside
``config.json``. ``--learning {auto,continual,episode}`` (default auto) says when a learning
agent is reset (see :mod:`covercast.agents.evaluate`: auto is continual for an agent that
learns, as deployed, and per episode otherwise); ``config.json`` records the mode used
(``learning``) and the one asked for (``learning_requested``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from covercast._io import atomic_write_csv, atomic_write_text, prepare_output_dir

__all__ = ["TRAIN_AGENTS", "check_env_id", "train", "load_agent", "evaluate_saved", "add_subcommands",
           "cmd_train", "cmd_evaluate"]

#: ``covercast train --steps`` default: GRU-PPO's default budget (``GRUPPOConfig.total_steps``,
#: kept here so building the CLI does not import torch).
DEFAULT_STEPS: int = 1_000_000

#: Agents ``covercast train`` knows.
TRAIN_AGENTS: tuple[str, ...] = ("gru-ppo", "ppo", "recurrent-ppo")


def train(agent: str, env_id: str, steps: int, seed: int, out: str | Path, *,
          num_envs: int = 64, horizon_days: float = 7.0, params: str | None = None,
          resume: bool = False, overwrite: bool = False, progress: bool = True,
          **config: Any) -> Path:
    """Train ``agent`` on ``env_id`` for ``steps`` env-steps; return the run folder.

    ``params`` is a population JSON (None: the default population); ``config`` overrides
    :class:`~covercast.agents.gru_ppo.GRUPPOConfig` fields. A folder ``out`` that already
    holds files is refused (``FileExistsError``) unless ``resume`` (continue its GRU-PPO run)
    or ``overwrite`` (delete it first), so a run is never mixed with an older one.
    """
    from covercast.agents.gru_ppo import CONSTRAINT_FIELDS, GRUPPOConfig, GRUPPOTrainer
    from covercast.simulators.suite import load_population

    if agent not in TRAIN_AGENTS:
        raise ValueError(f"`agent` must be one of {list(TRAIN_AGENTS)}, got {agent!r}.")
    out = Path(out)
    check_env_id(env_id)
    if resume and overwrite:
        raise ValueError("--resume and --overwrite contradict each other: choose one.")
    if resume:
        if agent != "gru-ppo":
            raise ValueError("--resume is only supported for gru-ppo (SB3 runs restart).")
        if not (out / "checkpoint" / "model.safetensors").is_file():
            raise FileNotFoundError(f"--resume: {out} holds no GRU-PPO run to continue "
                                    f"({out / 'checkpoint' / 'model.safetensors'} is missing).")
        tr = GRUPPOTrainer.load(out / "checkpoint", out=out, progress=progress,
                                total_steps=int(steps))
        tr.train()
        return out
    constrained = [k for k in CONSTRAINT_FIELDS if config.get(k) is not None]
    if constrained and agent != "gru-ppo":
        raise ValueError(f"{', '.join(constrained)}: constrained training is GRU-PPO's "
                         f"(PPO-Lagrangian); {agent} trains on the reward alone.")
    if config.get("eval_every") and agent != "gru-ppo":
        raise ValueError(f"eval_every: keeping the best validated policy is GRU-PPO's; "
                         f"{agent} keeps its final policy.")
    pop = load_population(params) if params else None
    cfg = GRUPPOConfig(env_id=env_id, total_steps=int(steps), seed=int(seed),
                       num_envs=int(num_envs), horizon_days=float(horizon_days), **config)
    cfg.validate()                      # a bad setting fails before the folder is touched
    prepare_output_dir(out, overwrite=overwrite)
    if agent == "gru-ppo":
        GRUPPOTrainer(cfg, params=pop, out=out, progress=progress).train()
    else:
        from covercast.agents.sb3 import train_sb3
        train_sb3(agent, cfg, params=pop, out=out, progress=progress)
    return out


def check_env_id(env_id: str) -> str:
    """``env_id`` if Gymnasium knows it (after covercast registered its ids), else a
    ``ValueError`` listing covercast's ids (for ``--env``)."""
    import gymnasium as gym

    import covercast.envs  # noqa: F401  (registers the ids)

    if env_id not in gym.registry:
        ours = sorted(k for k in gym.registry if k.startswith("covercast/"))
        raise ValueError(f"--env: unknown environment id {env_id!r}; covercast's ids are "
                         f"{', '.join(ours)} (any id registered with Gymnasium works).")
    return env_id


def load_agent(spec: str, env_id: str, seed: int = 0, *, which: str = "final",
               trust_pickle: bool = False) -> Any:
    """An agent from a run folder (GRU-PPO checkpoint or SB3 model) or a baseline name
    (random, static, heuristic, or the style bandits thompson and linucb, which learn as they
    are evaluated); ``which="best"``: a GRU-PPO run's best validated policy (``eval_every``).

    GRU-PPO checkpoints are safetensors and JSON (loading runs no code). An SB3 run folder's
    ``model.zip`` is unpickled by SB3 (cloudpickle), which can run any code the file holds, so
    it loads only with ``trust_pickle=True`` (``--trust-pickle``): for folders you made or
    trust.
    """
    if which not in ("final", "best"):
        raise ValueError(f"`which` must be 'final' or 'best', got {which!r}.")
    from covercast.agents import (
        ActivityHeuristic,
        LinUCBStyleAgent,
        RandomAgent,
        StaticScheduler,
        ThompsonStyleAgent,
    )
    from covercast.agents.base import ActionLayout

    path = Path(spec)
    if (path / "checkpoint").is_dir() and not (path / "checkpoint" / "model.safetensors").is_file():
        raise FileNotFoundError(f"{path} is a run folder whose checkpoint/ holds no "
                                "model.safetensors: the run stopped before saving its weights, "
                                "or they were removed; train it again (or --resume an earlier "
                                "copy).")
    if (path / "checkpoint" / "model.safetensors").is_file():
        path = path / "checkpoint"
    if (path / "model.safetensors").is_file():
        from covercast.agents.gru_ppo import GRUPPOAgent
        return GRUPPOAgent.load(path, seed=seed, which=which)
    if which == "best":
        raise ValueError(f"`--best` needs a GRU-PPO run folder; {spec!r} is not one.")
    if (path / "agent.json").is_file():
        from covercast.agents.sb3 import SB3Agent
        return SB3Agent.load(path, seed=seed, trust_pickle=trust_pickle)
    baselines = {"random": RandomAgent, "static": StaticScheduler,
                 "heuristic": ActivityHeuristic, "thompson": ThompsonStyleAgent,
                 "linucb": LinUCBStyleAgent}
    if spec in baselines:
        import gymnasium as gym
        env = gym.make(env_id)
        layout = ActionLayout.from_env(env)
        env.close()
        return baselines[spec](mode=layout.mode, n_styles=layout.n_styles, seed=seed)
    if path.is_dir():
        raise FileNotFoundError(f"`--agent` {spec!r} is a folder but not a run folder: it holds "
                                "neither checkpoint/model.safetensors (GRU-PPO) nor agent.json "
                                f"(SB3); files there: {sorted(x.name for x in path.iterdir())[:8]}.")
    raise ValueError(f"`--agent` {spec!r} is neither a run folder (with checkpoint/ or "
                     f"agent.json) nor a baseline ({sorted(baselines)}).")


def evaluate_saved(spec: str, env_id: str, episodes: int, seed: int, out: str | Path, *,
                   horizon_days: float = 14.0, deterministic: bool = False,
                   progress: bool = True, which: str = "final",
                   learning: str = "auto", overwrite: bool = False,
                   trust_pickle: bool = False) -> Path:
    """Evaluate an agent (see :func:`load_agent`) and write ``episodes.csv`` + ``config.json``.

    ``learning`` is passed to :func:`~covercast.agents.evaluate.evaluate` (``"auto"``:
    continual for an agent that learns, per episode otherwise); ``config.json`` records the mode
    used (``learning``) and the one asked for (``learning_requested``). A folder ``out`` that
    already holds files is refused before anything runs unless ``overwrite``.
    ``trust_pickle``: see :func:`load_agent`.
    """
    from covercast.agents.evaluate import evaluate, resolve_learning

    resolve_learning(None, learning)        # a bad value fails before the agent is loaded
    check_env_id(env_id)
    agent = load_agent(spec, env_id, seed, which=which, trust_pickle=trust_pickle)
    prepare_output_dir(out, overwrite=overwrite, what="results folder", resume_flag=None)
    df = evaluate(agent, env_id, episodes=episodes, seed=seed, progress=progress,
                  deterministic=deterministic, env_kwargs={"horizon_days": horizon_days},
                  learning=learning)
    mode = df.attrs["learning"]
    out = Path(out)
    atomic_write_csv(df, out / "episodes.csv")
    atomic_write_text(out / "config.json", json.dumps(
        {"agent": spec, "env": env_id, "episodes": episodes, "seed": seed,
         "horizon_days": horizon_days, "deterministic": deterministic, "policy": which,
         "learning": mode, "learning_requested": learning},
        indent=2))
    print(f"learning: {mode}" + (" (auto)" if learning == "auto" else ""))
    print(df[["return", "pushes", "opens", "ctr", "dwell_min", "opted_out"]].mean()
          .to_string())
    return out


def cmd_train(args: argparse.Namespace) -> int:
    from covercast.agents.gru_ppo import CONSTRAINT_FIELDS

    limits = {k: getattr(args, k) for k in CONSTRAINT_FIELDS if getattr(args, k) is not None}
    if args.eval_every:
        limits.update(eval_every=args.eval_every, eval_users=args.eval_users)
    out = train(args.agent, args.env, args.steps, args.seed, args.out, num_envs=args.num_envs,
                horizon_days=args.horizon_days, params=args.params, resume=args.resume,
                overwrite=args.overwrite, progress=not args.quiet, **limits)
    print(f"run: {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    out = evaluate_saved(args.agent, args.env, args.episodes, args.seed, args.out,
                         horizon_days=args.horizon_days, deterministic=args.deterministic,
                         progress=not args.quiet, which="best" if args.best else "final",
                         learning=args.learning, overwrite=args.overwrite,
                         trust_pickle=args.trust_pickle)
    print(f"results: {out}")
    return 0


def add_subcommands(subparsers: Any) -> None:
    """Add ``train`` and ``evaluate`` to an ``argparse`` subparsers object."""
    from covercast.agents.evaluate import LEARNING_CHOICES

    sp = subparsers.add_parser("train", help="train GRU-PPO or an SB3 reference agent",
                               description="train GRU-PPO or an SB3 reference agent")
    sp.set_defaults(func=cmd_train)
    sp.add_argument("--agent", default="gru-ppo", choices=list(TRAIN_AGENTS), help="learner")
    sp.add_argument("--env", default="covercast/PushSchedule-v0",
                    help="covercast id, or covercast/PopulationVector-v0 (N users, one engine)")
    sp.add_argument("--steps", type=int, default=DEFAULT_STEPS,
                    help="env-steps to train for (default: %(default)s, GRU-PPO's default "
                    "budget; with 200,000, 16 of 40 runs on the suite populations never pushed)")
    sp.add_argument("--seed", type=int, default=0, help="master seed")
    sp.add_argument("--num-envs", type=int, default=64, help="parallel users")
    sp.add_argument("--horizon-days", type=float, default=7.0, help="days per training episode")
    sp.add_argument("--params", help="a suite population name (`covercast populations list`) "
                    "or a population JSON (default: the default population, calibrated-v1)")
    sp.add_argument("--max-pushes-per-day", type=float, default=None,
                    help="gru-ppo: hold delivered pushes per user-day at or below this "
                         "(PPO-Lagrangian constraint; default: unconstrained)")
    sp.add_argument("--min-pushes-per-day", type=float, default=None,
                    help="gru-ppo: hold delivered pushes per user-day at or above this "
                         "(default: unconstrained)")
    sp.add_argument("--max-opt-outs-per-day", type=float, default=None,
                    help="gru-ppo: hold opt-outs per user-day at or below this "
                         "(default: unconstrained)")
    sp.add_argument("--eval-every", type=int, default=0, metavar="K",
                    help="gru-ppo: validate every K iterations on users of the training "
                         "population it never trains on, keep the best policy (eval.csv; "
                         "`covercast evaluate --best`)")
    sp.add_argument("--eval-users", type=int, default=512,
                    help="gru-ppo: validation users (with --eval-every)")
    sp.add_argument("--resume", action="store_true",
                    help="continue the GRU-PPO run in OUT (its checkpoint, progress.csv and "
                         "TensorBoard files)")
    sp.add_argument("--overwrite", action="store_true",
                    help="delete OUT first if it holds files (without --resume or "
                         "--overwrite, such a folder is refused)")
    sp.add_argument("--out", required=True, help="run folder, e.g. runs/NAME")
    sp.add_argument("--quiet", action="store_true", help="no progress bars")

    sp = subparsers.add_parser("evaluate", help="evaluate a trained agent or a baseline",
                               description="evaluate a trained agent or a baseline")
    sp.set_defaults(func=cmd_evaluate)
    sp.add_argument("--agent", required=True,
                    help="run folder (from covercast train) or a baseline: random, static, "
                         "heuristic, or a style bandit (thompson, linucb; they learn as they "
                         "are evaluated, see --learning)")
    sp.add_argument("--env", default="covercast/PushSchedule-v0", help="registered env id")
    sp.add_argument("--episodes", type=int, default=100, help="users (episodes) evaluated")
    sp.add_argument("--seed", type=int, default=0, help="master seed")
    sp.add_argument("--horizon-days", type=float, default=14.0, help="days per episode")
    sp.add_argument("--deterministic", action="store_true",
                    help="greedy actions (default: sample from the policy)")
    sp.add_argument("--best", action="store_true",
                    help="a GRU-PPO run's best validated policy (trained with --eval-every) "
                         "instead of its final one")
    sp.add_argument("--learning", default="auto", choices=list(LEARNING_CHOICES),
                    help="when a learning agent is reset: continual (once, then it keeps "
                         "learning across users, as deployed), episode (before every user); "
                         "auto (default): continual for an agent that learns, episode otherwise "
                         "(the mode used is `learning` in config.json)")
    sp.add_argument("--trust-pickle", action="store_true",
                    help="allow loading an SB3 run folder's model.zip: SB3 unpickles it with "
                         "cloudpickle, which can run code, so only for folders you made or "
                         "trust (GRU-PPO runs are safetensors and need no flag)")
    sp.add_argument("--overwrite", action="store_true",
                    help="delete OUT first if it holds files (otherwise such a folder is "
                         "refused)")
    sp.add_argument("--out", required=True, help="results folder (episodes.csv, config.json)")
    sp.add_argument("--quiet", action="store_true", help="no progress bars")
