"""GRU-PPO on the one-active-hour task over many training seeds, with ablations.

Run: ``nice -n 10 python benchmarks/bench_learning.py one-hour --seeds 0-19 --workers 2`` (writes
reports/bench_learning/one_active_hour.csv and report.md: per variant, the seeds whose greedy
policy reaches >= 0.9 of the optimum, and every seed's ratio). See
covercast/experiments/bench_learning.py.
"""

from covercast.experiments.bench_learning import main

if __name__ == "__main__":
    raise SystemExit(main())
