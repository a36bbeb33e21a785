"""GRU-PPO vs sb3-contrib RecurrentPPO training throughput (and the torchrl backend check).

Run: ``nice -n 10 python benchmarks/bench_rl.py --num-envs 64 --steps 21504 --backends``
(writes reports/bench_rl/bench_rl.csv). See covercast/experiments/bench_rl.py.
"""

from covercast.experiments.bench_rl import main

if __name__ == "__main__":
    raise SystemExit(main())
