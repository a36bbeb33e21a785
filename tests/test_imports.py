"""The simulator, envs, baseline agents and OPE import without torch (the heavy parts are
optional)."""

import subprocess
import sys

import pytest

LIGHT_MODULES = [
    "covercast",
    "covercast.simulators",
    "covercast.simulators.params",
    "covercast.simulators.logs",
    "covercast.simulators.population",
    "covercast.simulators.response",
    "covercast.simulators.fit",
    "covercast.simulators.obd",
    "covercast.simulators.calibrate",
    "covercast.generators",
    "covercast.covers",
    "covercast.covers.attributes",
    "covercast.covers.procedural",
    "covercast.covers.bank",
    "covercast.envs",
    "covercast.envs.vector",
    "covercast.testing",
    "covercast.agents",
    "covercast.agents.evaluate",
    "covercast.experiments.cli",
    "covercast.experiments.evaluate",
    "covercast.experiments.stats",
    "covercast.ope",
    "covercast.ope.estimators",
    "covercast.ope.data",
]


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_module_imports_without_torch(module):
    code = (
        "import sys, importlib\n"
        f"importlib.import_module({module!r})\n"
        "heavy = sorted(m for m in ('torch', 'diffusers', 'obp') if m in sys.modules)\n"
        "assert not heavy, f'importing {module} pulled in {heavy}'\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
