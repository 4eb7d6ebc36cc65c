"""Every example in examples/ runs against the local cluster and exits 0."""

import os
import pathlib
import subprocess
import sys

import pytest

from conftest import ROOT

EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("[!_]*.py"))


def test_every_example_is_listed():
    assert {"quickstart.py", "dag.py", "counter.py", "model_serving.py", "messaging.py",
            "consistency.py"} <= set(
        EXAMPLES
    )


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_runs(example, url):
    # The examples find the cluster's token as a user's program does: in the config
    # directory (the tests' own, see conftest).
    env = {"PYTHONPATH": str(ROOT / "python"), "PATH": "/usr/bin:/bin",
           "XDG_CONFIG_HOME": os.environ["XDG_CONFIG_HOME"]}
    r = subprocess.run(
        [sys.executable, str(ROOT / "examples" / example), url],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=pathlib.Path(ROOT / "examples"),
    )
    assert r.returncode == 0, f"{example} failed:\n{r.stdout}\n{r.stderr}"
