import pickle
import sys

import cloudpickle
import pytest

import cloudburst


def test_consistency_constants_are_distinct():
    assert len(set(cloudburst.CONSISTENCY_MODES)) == 3
    assert cloudburst.NORMAL == cloudburst.LWW


def test_reference_equality_and_validation():
    a = cloudburst.CloudburstReference("k")
    assert a == cloudburst.CloudburstReference("k")
    assert a != cloudburst.CloudburstReference("j")
    assert pickle.loads(pickle.dumps(a)) == a
    with pytest.raises(TypeError):
        cloudburst.CloudburstReference("")


def test_client_environment_names_this_interpreter():
    env = cloudburst.client_environment()
    assert env["python"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert env["cloudpickle"] == cloudpickle.__version__


def test_error_carries_code_and_message():
    e = cloudburst.CloudburstError("unknown_function", "no function named f")
    assert e.code == "unknown_function"
    assert "no function named f" in str(e)


def test_plain_values_pickle_exactly_as_cloudpickle_does():
    from cloudburst import protocol

    values = [0, -1, 2**70, 1.5, float("inf"), "", "héllo", b"", b"\x00" * 300, True, None]
    for v in values:
        assert protocol.dumps(v) == cloudpickle.dumps(v), v
    assert protocol.dumps([1, "a"]) == cloudpickle.dumps([1, "a"])
