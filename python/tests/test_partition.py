"""A network partition between real `cloudburst node` processes, healed after a while.

Three nodes (KVS and gateway each, k = 2) on 127.0.0.2, .3 and .4, in a network namespace
the test makes (`unshare --net`); an nftables table in it drops every packet between C
and the others for a few seconds while writers put through A, then is deleted. After the
heal every key must read with its last acknowledged value through every node's gateway
(each reads its own replica first: C must have caught up) and every view must hold all
three alive. `python/benchmarks/bench_partition.py` stages it (and `cloudburst bench
faults` reports `partition_heal_converge_s` from it).

The checker first shows it sees the failure it looks for: just before the heal, reads
through C's gateway (C answers from its own, stale replica) must find keys that are not
at their last acknowledged value."""

import os
import sys

import pytest

from conftest import ROOT, binary

sys.path.insert(0, str(ROOT / "python" / "benchmarks"))
from bench_partition import isolation_problem, run_isolated  # noqa: E402

#: How long the partition lasts: past membership's dead-after time (3 s), so C is held
#: dead and the others go on without it, then has to catch up.
PARTITION_SECONDS = 6.0


def test_a_partitioned_node_catches_up_and_nothing_acknowledged_is_lost(tmp_path):
    problem = isolation_problem()
    if problem:
        # CI installs what a partition needs (scripts/setup.sh): there a missing piece is a
        # failure, never a silent skip; elsewhere (a developer's machine without root) the
        # skip says why.
        if os.environ.get("CI"):
            pytest.fail(f"cannot stage a partition on the CI machine: {problem}")
        pytest.skip(f"cannot stage a partition on this machine: {problem}")
    result = run_isolated(binary(), tmp_path, PARTITION_SECONDS)
    assert result["acked_writes"] > 0, result
    assert result["stale_reads_through_c_before_heal"] > 0, result
    assert result["acked_writes_lost"] == 0, (result, tmp_path)
    assert result["partition_heal_converge_s"] is not None, (result, tmp_path)
