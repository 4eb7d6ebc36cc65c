"""Packages for functions: executors run on a Python environment of the user's choice
(`--python PATH`, `executor.python`), checked at start; without the package, a function's
import fails with a message naming the module and the fix. The numpy environment
`.venv-numpy` is made by scripts/setup.sh."""

import pytest

import cloudburst
from conftest import ROOT, LocalCluster, start_cluster

NUMPY_PYTHON = ROOT / ".venv-numpy" / "bin" / "python3"


def numpy_sum(cb, n):
    import numpy as np

    return float(np.arange(n).sum())


@pytest.fixture(scope="module")
def numpy_cluster(tmp_path_factory):
    assert NUMPY_PYTHON.exists(), f"{NUMPY_PYTHON} is missing: run scripts/setup.sh"
    c = start_cluster("--workers", "1", "--python", str(NUMPY_PYTHON),
                      tmp=tmp_path_factory.mktemp("numpy"))
    yield c
    assert c.stop() == 0


def test_numpy_function_runs_on_a_numpy_environment(numpy_cluster, url):
    with cloudburst.CloudburstConnection(numpy_cluster.url) as c:
        assert c.register(numpy_sum, "numpy_sum")(5).get(timeout=60) == 10.0
    # The same function on the default environment (no numpy): the error says what to do.
    with cloudburst.CloudburstConnection(url) as c:
        with pytest.raises(cloudburst.FunctionError) as e:
            c.register(numpy_sum, "numpy_sum")(5).get(timeout=60)
    assert e.value.exception_type == "ModuleNotFoundError"
    assert "'numpy'" in str(e.value) and "--python" in str(e.value), str(e.value)


def test_a_python_that_cannot_host_the_workers_is_refused_at_start(tmp_path):
    c = LocalCluster("--python", "/nonexistent/bin/python3", tmp=tmp_path)
    assert not c.wait_ready(), "cloudburst local started on a missing python"
    code = c.stop()
    log = c.log_text()
    assert code != 0 and "/nonexistent/bin/python3" in log and "cannot be run" in log, log


def test_readme_python_snippets_run_as_written(numpy_cluster):
    """Every ```python block of the README, in order, against a cluster with numpy (the
    URL swapped for the test cluster's); a line `expr  # value ...` must give that value."""
    import ast
    import re

    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 2, "the README shows the client and a numpy function"
    namespace = {}
    for block in blocks:
        source = block.replace("ws://127.0.0.1:6200", numpy_cluster.url)
        lines = source.splitlines()
        for i, line in enumerate(lines):
            code, _, comment = line.partition("  # ")
            expected = comment.split(" ")[0].rstrip(":,") if comment else ""
            try:
                value = ast.literal_eval(expected)
                *before, last = code.split("; ")
                ast.parse(last, mode="eval")
            except (ValueError, SyntaxError):
                continue
            prefix = "; ".join(before) + "\n" if before else ""
            lines[i] = f"{prefix}__checks__.append(({last.strip()!r}, {last.strip()}, {value!r}))"
        namespace["__checks__"] = []
        exec(compile("\n".join(lines), "README.md", "exec"), namespace)
        for expr, got, want in namespace["__checks__"]:
            assert got == want, f"README: {expr} gave {got!r}, says {want!r}"
    namespace["cloud"].close()
