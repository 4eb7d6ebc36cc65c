"""The error hierarchy without a server: every code has its family, codes this client
does not know keep their code, errors pickle, and every code docs/protocol.md lists has a
family."""

import pickle
import re

import pytest

import cloudburst
from cloudburst import errors
from conftest import ROOT

FAMILIES = {
    "unknown_function": cloudburst.NotFoundError,
    "unknown_dag": cloudburst.NotFoundError,
    "invalid_request": cloudburst.InvalidRequestError,
    "bad_dag": cloudburst.InvalidRequestError,
    "kind_mismatch": cloudburst.InvalidRequestError,
    "message_too_large": cloudburst.InvalidRequestError,
    "unavailable": cloudburst.UnavailableError,
    "no_executors": cloudburst.UnavailableError,
    "overloaded": cloudburst.UnavailableError,
    "connection_failed": cloudburst.UnavailableError,
    "connection_closed": cloudburst.ConnectionClosedError,
    "timeout": cloudburst.CloudburstTimeout,
    "function_error": cloudburst.FunctionError,
    "worker_crashed": cloudburst.FunctionError,
    "unauthorized": cloudburst.AuthError,
    "session_expired": cloudburst.SessionError,
    "internal_error": cloudburst.InternalError,
}


@pytest.mark.parametrize("code", sorted(FAMILIES))
def test_each_code_raises_its_family_with_the_code(code):
    e = errors.error_for(code, "why")
    assert type(e) is FAMILIES[code]
    assert isinstance(e, cloudburst.CloudburstError)
    assert (e.code, e.message) == (code, "why")
    assert str(e) == f"{code}: why"


def test_an_unknown_code_is_the_base_class_with_its_code():
    e = errors.error_for("brand_new_code", "from a newer server")
    assert type(e) is cloudburst.CloudburstError
    assert e.code == "brand_new_code" and not e.retryable


def test_retryable_families():
    retryable = {c for c in errors.CLASSES if errors.CLASSES[c].retryable}
    assert {"unavailable", "no_executors", "overloaded", "timeout", "session_expired",
            "connection_closed"} <= retryable
    assert not retryable & {"invalid_request", "unknown_function", "function_error",
                            "unauthorized", "internal_error", "bad_dag"}


def test_timeouts_and_closed_connections_are_also_their_builtin_kinds():
    assert isinstance(errors.error_for("timeout", "x"), TimeoutError)
    assert issubclass(cloudburst.ConnectionClosedError, cloudburst.UnavailableError)


def test_function_error_carries_type_and_traceback():
    e = errors.error_for("function_error", "bad input", "ValueError", "Traceback: ...")
    assert (e.exception_type, e.traceback) == ("ValueError", "Traceback: ...")
    assert "Remote traceback:\nTraceback: ..." in str(e)


@pytest.mark.parametrize("code", ["session_expired", "function_error", "timeout", "new"])
def test_errors_pickle_with_their_fields(code):
    e = errors.error_for(code, "why", "KeyError", "tb")
    back = pickle.loads(pickle.dumps(e))
    assert type(back) is type(e) and (back.code, back.message) == (code, "why")
    assert getattr(back, "traceback", "tb") == "tb"


def test_the_wire_error_body_raises_the_family():
    from cloudburst import protocol

    e = protocol.error({"code": "unknown_dag", "message": "no DAG named `d`"})
    assert type(e) is cloudburst.NotFoundError and e.code == "unknown_dag"
    assert type(protocol.error("not a map")) is cloudburst.InvalidRequestError


def documented_codes():
    """Every code in docs/protocol.md's error table (first cells) and in its paragraph on
    the client-side codes of the Python package."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    section = text.split("## Error codes", 1)[1].split("\n## ", 1)[0]
    codes = set()
    for block in section.split("\n\n"):
        if block.startswith("|"):
            for row in block.splitlines():
                codes |= set(re.findall(r"`([a-z_]+)`", row.split("|")[1]))
        elif "Client-side codes" in block:
            codes |= set(re.findall(r"`([a-z_]+)`", block))
    return codes


def test_every_documented_code_has_a_family():
    codes = documented_codes()
    assert "session_expired" in codes and "connection_closed" in codes, codes
    assert sorted(codes - set(errors.CLASSES)) == []
