"""GRU-PPO vs sb3-contrib RecurrentPPO training throughput (and the torchrl backend check).

Run: ``nice -n 10 python benchmarks/bench_rl.py --num-envs 64 --steps 20000 --repeats 3
--agents gru-ppo recurrent-ppo recurrent-ppo-64 [--backends]`` (writes
reports/bench_rl/bench_rl.csv: env-steps/s, seconds in rollouts and in updates, and GRU-PPO's
speed-up over each learner, all measured in the same process). See
covercast/experiments/bench_rl.py.
"""

from covercast.experiments.bench_rl import main

if __name__ == "__main__":
    raise SystemExit(main())
