"""Issue 18 hardening of the environments: the registered ids give the documented horizon for
any slot length; every id works in ``AsyncVectorEnv`` workers under fork, forkserver and spawn.
"""

from __future__ import annotations

import gymnasium as gym
import pytest

import covercast  # noqa: F401  (registers the ids)
from covercast.envs import ENV_IDS, make
from covercast.envs.registration import DEFAULT_HORIZON_DAYS, GENERATION_ENV_ID
from covercast.simulators.params import default_params

#: no opt-outs, so every episode runs to its horizon
NO_OPT_OUT = default_params().with_parts(opt_out={"base_hazard": 0.0, "fatigue_coef": 0.0})


def expected_steps(env_id: str, slot_minutes: int, days: float = DEFAULT_HORIZON_DAYS,
                   pushes_per_day: int = 2) -> int:
    """14 days of decisions, counted by hand: slots, or pushes for CoverStyle."""
    if env_id == "covercast/CoverStyle-v0":
        return int(days) * pushes_per_day
    return int(days * 24 * 60 // slot_minutes)


def episode_length(env: gym.Env, seed: int) -> tuple[int, float]:
    """Steps of one episode under random actions, and the simulated hours it spanned."""
    env.reset(seed=seed)
    env.action_space.seed(seed)
    t0 = env.unwrapped.population.now
    n = 0
    while True:
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        n += 1
        assert not terminated
        if truncated:
            return n, env.unwrapped.population.now - t0
        assert n <= 10 * 4032, "the episode never ended"


@pytest.mark.parametrize("slot_minutes", [5, 15, 60])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_registered_ids_last_the_documented_horizon_for_any_slot_length(env_id, slot_minutes):
    want = expected_steps(env_id, slot_minutes)
    for how, env in (("gym.make", gym.make(env_id, slot_minutes=slot_minutes,
                                           params=NO_OPT_OUT)),
                     ("covercast.envs.make", make(env_id, slot_minutes=slot_minutes,
                                                  params=NO_OPT_OUT))):
        assert env.spec.max_episode_steps == want, how
        n, hours = episode_length(env, seed=slot_minutes)
        assert n == want, how
        # 14 days of simulated time (CoverStyle: from the first push time to 14 days later)
        assert hours == pytest.approx(24 * DEFAULT_HORIZON_DAYS), how


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_horizon_days_through_gym_make(env_id):
    env = gym.make(env_id, slot_minutes=15, horizon_days=2, params=NO_OPT_OUT)
    want = expected_steps(env_id, 15, days=2)
    assert env.spec.max_episode_steps == want
    assert episode_length(env, seed=1)[0] == want
    # a TimeLimit asked of gym.make still ends episodes earlier, and the spec says so
    short = gym.make(env_id, slot_minutes=15, max_episode_steps=3, params=NO_OPT_OUT)
    assert short.spec.max_episode_steps == 3
    assert episode_length(short, seed=1)[0] == 3


def test_cover_style_horizon_follows_push_hours():
    env = gym.make("covercast/CoverStyle-v0", push_hours=(9,), params=NO_OPT_OUT)
    assert env.spec.max_episode_steps == 14
    assert episode_length(env, seed=0) == (14, pytest.approx(14 * 24.0))
    with pytest.raises(ValueError, match="whole number of days"):
        gym.make("covercast/CoverStyle-v0", horizon_days=1.5)


def test_cover_generation_horizon_follows_push_hours():
    kw = dict(generator="procedural", cohort_size=4, response_hours=1)
    for extra, want in (({}, 28), ({"push_hours": (8,)}, 14), ({"horizon_days": 2}, 4)):
        env = gym.make(GENERATION_ENV_ID, **kw, **extra)
        assert env.spec.max_episode_steps == want, extra
        env.reset(seed=0)
        env.action_space.seed(0)
        n, truncated = 0, False
        while not truncated:
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            n += 1
            assert not terminated and n <= 100
        assert n == want, extra
    with pytest.raises(ValueError, match="whole number of days"):
        gym.make(GENERATION_ENV_ID, horizon_days=0.5, **kw)


@pytest.mark.parametrize("bad", [0, -1.0, float("nan"), "7", True])
def test_bad_horizon_days_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="horizon_days"):
        gym.make("covercast/PushTiming-v0", horizon_days=bad)


def test_make_vec_entry_point_gives_the_documented_horizon():
    env = gym.make_vec("covercast/PushSchedule-v0", num_envs=2,
                       vectorization_mode="vector_entry_point", slot_minutes=5)
    assert env.max_episode_steps == 4032
    env.close()


# ------------------------------------------------------------------ AsyncVectorEnv start methods
#: Runs in a fresh interpreter: two workers of each id, reset, one step, close. Prints one line
#: per id so that a hang shows which id it was.
VECTOR_SCRIPT = """
import sys
import gymnasium as gym
import covercast
from covercast.envs import ENV_IDS
from covercast.envs.registration import GENERATION_ENV_ID


def main(context):
    for env_id in (GENERATION_ENV_ID, *ENV_IDS):
        envs = gym.vector.AsyncVectorEnv([lambda env_id=env_id: gym.make(env_id)] * 2,
                                         context=context)
        obs, _ = envs.reset(seed=0)
        envs.action_space.seed(0)
        obs, reward, *_ = envs.step(envs.action_space.sample())
        assert obs.shape[0] == 2 and reward.shape == (2,)
        envs.close()
        print("ok", env_id, flush=True)


if __name__ == "__main__":      # spawn and forkserver workers import this file
    main(sys.argv[1])
"""

#: Generous for the loaded 2-core development machine (the CoverGeneration workers each load
#: torch and the VAE-IAT checkpoint; spawned workers re-import everything); a hang never ends.
VECTOR_TIMEOUT_S = 600


@pytest.mark.slow
@pytest.mark.parametrize("context", ["fork", "forkserver", "spawn"])
def test_every_id_runs_in_async_vector_env_workers(context, tmp_path):
    """AsyncVectorEnv builds a dummy env in the parent, then the workers build theirs: with
    fork, torch's OpenMP team used by the parent's CoverGeneration env deadlocked the workers.
    The check runs in a subprocess (its own process group, killed on timeout) so that a hang
    fails the test instead of hanging the run."""
    import os
    import signal
    import subprocess
    import sys

    script = tmp_path / "vector_check.py"
    script.write_text(VECTOR_SCRIPT)
    # torch on 2 OpenMP threads in the parent whatever the machine or the caller's
    # OMP_NUM_THREADS: with one thread there is no thread team to inherit and no hang to catch
    env = {**os.environ, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    proc = subprocess.Popen([sys.executable, str(script), context], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=VECTOR_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)          # the workers too
        out, _ = proc.communicate()
        pytest.fail(f"AsyncVectorEnv with context={context!r} hung (no result in "
                    f"{VECTOR_TIMEOUT_S} s); finished before the hang:\n{out}")
    assert proc.returncode == 0, out
    done = [line.split()[1] for line in out.splitlines() if line.startswith("ok ")]
    assert done == ["covercast/CoverGeneration-v0", *ENV_IDS], out
