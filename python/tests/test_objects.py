"""put_object / get_object against a real `cloudburst local`."""

import asyncio
import concurrent.futures
import os

import pytest

import cloudburst


def test_values_round_trip(cloud):
    for i, v in enumerate([7, "text", b"\x00bytes", {"a": [1, 2.5]}, (1, None), 2**70]):
        cloud.put_object(f"rt-{i}", v)
        assert cloud.get_object(f"rt-{i}") == v


def test_values_messagepack_cannot_hold_are_pickled_whole(cloud, monkeypatch):
    # Nested deeper than the server takes native values: pickled whole (the real limit,
    # 512 levels, is beyond what pickle itself reaches under Python's recursion limit).
    monkeypatch.setattr(cloudburst.protocol, "MAX_DEPTH", 4)
    deep = [1]
    for _ in range(8):
        deep = [deep, {"k": deep}]
    odd = {"deep": deep, "surrogate": "a\ud800", "huge": 2**70, "tuple": (1, [2])}
    for name, value in odd.items():
        cloud.put_object(f"objects/odd/{name}", value)
        assert cloud.get_object(f"objects/odd/{name}") == value, name
    echo = cloud.register(lambda cb, x: x, "objects_echo")
    for name, value in odd.items():
        assert echo(value).get(timeout=60) == value, name


def test_missing_key_is_none(cloud):
    assert cloud.get_object("never-written") is None


def test_last_writer_wins(cloud):
    cloud.put_object("lww", 1)
    cloud.put_object("lww", 2)
    assert cloud.get_object("lww") == 2


def test_sets_merge_by_union(cloud):
    cloud.put_object("set", {1, 2})
    cloud.put_object("set", frozenset({3}))
    assert cloud.get_object("set") == {1, 2, 3}


def test_set_then_plain_value_is_a_kind_mismatch(cloud):
    cloud.put_object("kinds", {1})
    with pytest.raises(cloudburst.InvalidRequestError) as e:
        cloud.put_object("kinds", 5)
    assert e.value.code == "kind_mismatch"


def test_reserved_keys_cannot_be_written(cloud):
    with pytest.raises(cloudburst.InvalidRequestError) as e:
        cloud.put_object("__cloudburst/functions/x", 1)
    assert e.value.code == "invalid_request"
    assert "reserved" in e.value.message


def test_empty_key_is_refused(cloud):
    with pytest.raises(cloudburst.InvalidRequestError) as e:
        cloud.get_object("")
    assert e.value.code == "invalid_request"


def test_large_value_64_mb_end_to_end(cloud):
    big = os.urandom(64 * 1000 * 1000)
    cloud.put_object("big", big)
    assert cloud.get_object("big") == big


def test_value_over_the_server_limit_is_refused_before_sending(cloud):
    too_big = b"x" * (cloud.max_message_bytes + 1)
    with pytest.raises(cloudburst.InvalidRequestError) as e:
        cloud.put_object("too-big", too_big)
    assert e.value.code == "message_too_large"
    assert cloud.get_object("too-big") is None  # and the connection still works


def test_eight_threads_share_one_connection(cloud):
    def work(t):
        for i in range(50):
            cloud.put_object(f"t{t}-{i}", (t, i))
        return [cloud.get_object(f"t{t}-{i}") for i in range(50)]

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(work, range(8)))
    for t, values in enumerate(results):
        assert values == [(t, i) for i in range(50)]


def test_asyncio_client(url):
    async def main():
        async with await cloudburst.AsyncCloudburstConnection.connect(url) as cloud:
            await cloud.put_object("async", {"x": 1})
            got = await asyncio.gather(*(cloud.get_object("async") for _ in range(20)))
            assert got == [{"x": 1}] * 20
            assert await cloud.get_object("async-missing") is None
            await cloud.ping()
            with pytest.raises(cloudburst.InvalidRequestError) as e:
                await cloud.get_object("")
            assert e.value.code == "invalid_request"
        with pytest.raises(cloudburst.ConnectionClosedError) as e:
            await cloud.ping()
        assert e.value.code == "connection_closed"
        with pytest.raises(cloudburst.UnavailableError) as e:
            await cloudburst.AsyncCloudburstConnection.connect("ws://127.0.0.1:1")
        assert e.value.code == "connection_failed"

    asyncio.run(main())


def test_closed_connection_raises(url):
    conn = cloudburst.CloudburstConnection(url)
    conn.close()
    with pytest.raises(cloudburst.ConnectionClosedError) as e:
        conn.get_object("k")
    assert e.value.code == "connection_closed"


def test_bad_url_fails_clearly():
    with pytest.raises(cloudburst.UnavailableError) as e:
        cloudburst.CloudburstConnection("ws://127.0.0.1:1")
    assert e.value.code == "connection_failed"


def test_a_deleted_key_reads_as_missing_until_written_again(cloud):
    cloud.put_object("del", 1)
    cloud.delete_object("del")
    assert cloud.get_object("del") is None
    cloud.put_object("del", 2)
    assert cloud.get_object("del") == 2


def test_a_set_written_after_a_delete_holds_only_what_came_after(cloud):
    cloud.put_object("del-set", {1, 2})
    cloud.delete_object("del-set")
    cloud.put_object("del-set", {3})
    assert cloud.get_object("del-set") == {3}


def test_a_deleted_key_may_be_written_with_another_kind(cloud):
    cloud.put_object("del-kind", {1})
    cloud.delete_object("del-kind")
    cloud.put_object("del-kind", 5)
    assert cloud.get_object("del-kind") == 5


def test_deleting_a_reserved_key_is_refused(cloud):
    with pytest.raises(cloudburst.InvalidRequestError):
        cloud.delete_object("__cloudburst/functions/anything")


def test_functions_delete_keys(cloud):
    def remove(cb, key):
        cb.delete(key)
        return cb.get(key)

    cloud.put_object("del-fn", 1)
    cloud.register(remove, "remove")
    assert cloud.exec_func("remove", ["del-fn"]).get(timeout=60) is None
    assert cloud.get_object("del-fn") is None


def test_a_result_read_with_delete_is_deleted(cloud):
    square = cloud.register(lambda cb, x: x * x, "square_then_delete")
    future = square(3)
    assert future.get(timeout=60, delete=True) == 9
    assert cloud.get_object(future.obj_id) is None
    plain = square(4)
    assert plain.get(timeout=60) == 16
    assert cloud.get_object(plain.obj_id) == 16, "kept when not asked"
