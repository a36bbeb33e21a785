"""A distributed scheduling run survives faults: a real Ray head, a killed worker, a lost driver.

The test starts a Ray head the way the README's "Scaling out" section does (``ray start
--head``, on 127.0.0.1, with its own token), runs ``covercast experiment scheduling --address``
against it, and while cells are running

1. kills the Ray worker process executing a cell *and* the driver (the user's laptop goes
   away): the folder keeps the finished cells, and nothing half-written passes for finished;
2. reruns the same command, and while it runs kills the worker of a cell again (Ray retries
   the task on another worker).

The rerun completes; every cell is there once (each seed's users exactly once per policy and
population), and cells finished before the faults were not run again (their ``cell.json``
unchanged, byte for byte and in mtime).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("ray", reason="Ray is in the `ray` extra")
pytestmark = pytest.mark.slow

RAY = Path(sys.executable).with_name("ray")
SEEDS = 3
POLICIES = ["static", "random", "gru-ppo"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def ray_head(tmp_path_factory):
    """A Ray head on 127.0.0.1 with 2 CPUs and its own auth token, in its own session so that
    teardown stops exactly its processes (never another Ray on the machine)."""
    if not RAY.exists():
        pytest.skip(f"the `ray` command is not next to {sys.executable}")
    port = _free_port()
    temp = Path(f"/tmp/cc_ray_{os.getpid()}_{port}")  # short: Ray's socket paths have a limit
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
           "RAY_USAGE_STATS_ENABLED": "0", "OMP_NUM_THREADS": "1"}
    head = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
         f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
         f"--temp-dir={temp}", "--disable-usage-stats"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert head.poll() is None, "`ray start --head` exited"
            time.sleep(0.5)
        else:
            pytest.fail("the Ray head did not listen within 120 s")
        yield f"127.0.0.1:{port}", env
    finally:
        try:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        head.wait(timeout=30)
        shutil.rmtree(temp, ignore_errors=True)


def _cell_workers() -> list[int]:
    """Pids of Ray workers executing a scheduling cell (Ray titles them ``ray::run_cell``)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if (proc / "cmdline").read_bytes().startswith(b"ray::run_cell"):
                    pids.append(int(proc.name))
            except OSError:
                continue
    return pids


def _wait_for(predicate, timeout: float, what: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if process.poll() is not None:
            out = process.stdout.read() if process.stdout else ""
            pytest.fail(f"the run ended (rc {process.returncode}) before {what}:\n{out}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def _start(out: Path, address: str, env: dict[str, str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "covercast.experiments.cli", "experiment", "scheduling",
           "--fast", "--seeds", str(SEEDS), "--policies", *POLICIES, "--fitted-learners",
           "--address", address, "--out", str(out), "--quiet"]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def test_scheduling_on_a_ray_cluster_survives_a_killed_worker_and_a_lost_driver(ray_head,
                                                                                tmp_path):
    address, env = ray_head
    out = tmp_path / "run"
    cells = [out / "cells" / f"seed{i}_default" for i in range(SEEDS)]

    def done() -> list[Path]:
        return [c for c in cells if (c / "cell.json").exists()]

    # 1. first run: once one cell has finished and another is running, kill that cell's
    #    worker and the driver itself
    first = _start(out, address, env)
    _wait_for(lambda: done() and _cell_workers(), 600, "a finished and a running cell", first)
    for pid in _cell_workers():
        os.kill(pid, signal.SIGKILL)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    finished = {c: ((c / "cell.json").read_bytes(), (c / "cell.json").stat().st_mtime_ns)
                for c in done()}
    assert 1 <= len(finished) < SEEDS, "the fault must hit the run mid-way"
    assert not (out / "report.md").exists()

    # 2. the rerun: its cells start (the finished ones are skipped); kill one cell's worker
    #    while the driver lives -- Ray retries the task elsewhere
    second = _start(out, address, env)
    _wait_for(_cell_workers, 600, "a running cell in the rerun", second)
    os.kill(_cell_workers()[0], signal.SIGKILL)
    try:
        output, _ = second.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        os.killpg(second.pid, signal.SIGKILL)
        pytest.fail("the rerun did not finish within 15 minutes")
    assert second.returncode == 0, output

    # no cell lost
    assert all((c / "cell.json").exists() for c in cells)
    assert (out / "report.md").exists()
    # no cell run twice: finished cells untouched; every seed's users once per policy
    for c, (data, mtime) in finished.items():
        assert (c / "cell.json").read_bytes() == data
        assert (c / "cell.json").stat().st_mtime_ns == mtime
    episodes = pd.read_csv(out / "episodes.csv")
    assert sorted(episodes["seed_index"].unique()) == list(range(SEEDS))
    counts = episodes.groupby(["population", "policy", "seed_index"]).size()
    assert counts.nunique() == 1, counts
    per_cell = pd.read_csv(cells[0] / "episodes.csv").groupby(["population", "policy"]).size()
    assert int(counts.iloc[0]) == int(per_cell.iloc[0])
    assert set(episodes["policy"]) >= set(POLICIES)
