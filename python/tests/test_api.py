"""The two clients share one method layer (`cloudburst._api.Methods`): checked without a
server."""

import asyncio
import inspect

import pytest

import cloudburst
from cloudburst import _api


def public_methods(cls):
    return {n: f for n, f in vars(cls).items()
            if inspect.iscoroutinefunction(f) and not n.startswith("_")}


def test_the_sync_client_has_every_method_with_the_same_signature():
    methods = public_methods(_api.Methods)
    assert {"register", "register_dag", "call_dag", "exec_func", "get_function", "list",
            "list_dags", "delete_dag", "put_object", "get_object", "ping", "close"} <= set(methods)
    for name, f in methods.items():
        sync = getattr(cloudburst.CloudburstConnection, name)
        assert not inspect.iscoroutinefunction(sync), name
        assert sync.__wrapped__ is f, name
        assert inspect.signature(sync) == inspect.signature(f), name
        assert sync.__doc__ == f.__doc__, name


def test_the_asyncio_client_is_the_method_layer():
    for name, f in public_methods(_api.Methods).items():
        assert getattr(cloudburst.AsyncCloudburstConnection, name) is f, name


def test_run_blocking_returns_raises_and_refuses_to_suspend():
    async def value():
        return 7

    async def fails():
        raise cloudburst.NotFoundError("unknown_dag", "d")

    async def suspends():
        await asyncio.sleep(0)

    assert _api.run_blocking(value()) == 7
    with pytest.raises(cloudburst.NotFoundError) as e:
        _api.run_blocking(fails())
    assert e.value.code == "unknown_dag"
    with pytest.raises(RuntimeError, match="suspends"):
        _api.run_blocking(suspends())
