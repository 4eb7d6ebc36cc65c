"""The wire protocol seen raw: malformed frames, unknown ops, versions, oversized frames,
the client token, the idle timeout and a second instance on the same port."""

import base64
import os
import socket
import time

import msgpack
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

import cloudburst
from conftest import LocalCluster, auth_headers, start_cluster


def raw(url, **kw):
    """A websocket to `url` presenting the tests' token, with no client on top."""
    return connect(url, max_size=None, compression=None, proxy=None,
                   additional_headers=auth_headers(), **kw)


def request(ws, frame):
    ws.send(frame)
    return msgpack.unpackb(ws.recv(timeout=10), raw=False)


def test_hello_reports_version_and_limits(url):
    with raw(url) as ws:
        r = request(ws, msgpack.packb({"v": 1, "id": 1, "op": "hello"}))
    assert r["id"] == 1 and r["v"] == 1
    assert r["ok"]["protocol"] == 1
    assert r["ok"]["max_message_bytes"] >= 64 * 1024 * 1024


def test_malformed_frames_get_errors_and_the_connection_survives(url):
    with raw(url) as ws:
        r = request(ws, b"\xc1 definitely not msgpack")
        assert r["id"] is None and r["err"]["code"] == "malformed_frame"
        r = request(ws, msgpack.packb([1, 2, 3]))
        assert r["err"]["code"] == "malformed_frame"
        ws.send("a text frame")
        r = msgpack.unpackb(ws.recv(timeout=10))
        assert r["err"]["code"] == "malformed_frame" and "binary" in r["err"]["message"]
        r = request(ws, msgpack.packb({"v": 1, "id": 2, "op": "launch_rockets"}))
        assert (r["id"], r["err"]["code"]) == (2, "unknown_op")
        r = request(ws, msgpack.packb({"v": 99, "id": 3, "op": "ping"}))
        assert (r["id"], r["err"]["code"]) == (3, "unsupported_version")
        r = request(ws, msgpack.packb({"v": 1, "id": 4, "op": "put_object", "key": 5}))
        assert (r["id"], r["err"]["code"]) == (4, "invalid_request")
        r = request(ws, msgpack.packb({"v": 1, "id": 5, "op": "ping"}))
        assert r == {"v": 1, "id": 5, "ok": None}


def test_oversized_frame_closes_with_a_reason(url):
    with raw(url) as ws:
        limit = request(ws, msgpack.packb({"v": 1, "id": 1, "op": "hello"}))["ok"]
        ws.send(b"\x00" * (limit["max_message_bytes"] + 1))
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=30)
    assert e.value.rcvd is not None and e.value.rcvd.code == 1009
    assert "message_too_large" in e.value.rcvd.reason


def test_pipelined_requests_each_get_one_answer(url):
    with raw(url) as ws:
        for i in range(100):
            ws.send(msgpack.packb({"v": 1, "id": i, "op": "ping"}))
        ids = sorted(msgpack.unpackb(ws.recv(timeout=10))["id"] for _ in range(100))
    assert ids == list(range(100))


def test_token_is_required_when_configured(tmp_path):
    c = start_cluster(tmp=tmp_path, env={"CLOUDBURST_TOKEN": "s3cret"})
    try:
        with pytest.raises(cloudburst.AuthError) as e:
            cloudburst.CloudburstConnection(c.url)
        assert e.value.code == "unauthorized"
        with pytest.raises(cloudburst.AuthError) as e:
            cloudburst.CloudburstConnection(c.url, token="wrong")
        assert e.value.code == "unauthorized"
        with cloudburst.CloudburstConnection(c.url, token="s3cret") as conn:
            conn.put_object("k", 1)
            assert conn.get_object("k") == 1
    finally:
        assert c.stop() == 0


def _silent_websocket(url):
    """A websocket client that completes the handshake and then never answers pings."""
    host, port = url.removeprefix("ws://").split(":")
    s = socket.create_connection((host, int(port)), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    auth = "".join(f"{k}: {v}\r\n" for k, v in auth_headers().items())
    s.sendall(
        (
            f"GET / HTTP/1.1\r\nHost: {host}:{port}\r\n{auth}Upgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s, head.split(b"\r\n\r\n", 1)[1]


def test_silent_client_is_pinged_then_disconnected(tmp_path):
    config = "[gateway]\nheartbeat_ms = 100\nclient_timeout_ms = 600\n"
    c = start_cluster(config=config, tmp=tmp_path)
    try:
        s, data = _silent_websocket(c.url)
        deadline = time.monotonic() + 10
        opcodes = []
        while time.monotonic() < deadline and 0x8 not in opcodes:
            while len(data) >= 2:
                opcodes.append(data[0] & 0x0F)
                n = data[1] & 0x7F
                data = data[2 + n:]
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        s.close()
        assert 0x9 in opcodes, f"expected pings, got opcodes {opcodes}"
        assert 0x8 in opcodes, f"expected a close frame, got opcodes {opcodes}"
    finally:
        assert c.stop() == 0


def test_an_idle_client_answers_pings_and_stays_connected(tmp_path):
    """Nobody reads while no request waits: the client's keep-alive thread must answer
    the server's pings, or the server closes the idle connection after its timeout."""
    config = "[gateway]\nheartbeat_ms = 100\nclient_timeout_ms = 600\n"
    c = start_cluster(config=config, tmp=tmp_path)
    try:
        cloud = cloudburst.CloudburstConnection(c.url)
        cloud.put_object("idle", 1)
        time.sleep(2.0)  # the scenario: idle for more than three client timeouts
        assert cloud.get_object("idle") == 1
        cloud.close()
    finally:
        assert c.stop() == 0


def test_large_puts_beyond_the_byte_budget_queue_and_all_complete(tmp_path):
    """With a 1 MiB budget per connection, eight threads putting 600 kB values (and one
    value larger than the whole budget) on one connection wait for each other: every put
    completes and reads back intact."""
    import concurrent.futures

    c = start_cluster(config="[gateway]\nmax_in_flight_bytes = 1048576\n", tmp=tmp_path)
    try:
        cloud = cloudburst.CloudburstConnection(c.url)

        def work(t):
            out = []
            for i in range(3):
                value = bytes([t]) * 600_000 + bytes([i])
                cloud.put_object(f"budget-{t}-{i}", value)
                out.append(cloud.get_object(f"budget-{t}-{i}") == value)
            return out

        huge = os.urandom(3 * 1024 * 1024)  # alone exceeds the budget: runs alone
        pool = concurrent.futures.ThreadPoolExecutor(9)
        try:
            done = list(pool.map(work, range(8), timeout=120))
            assert done == [[True] * 3] * 8
            put = pool.submit(cloud.put_object, "budget-huge", huge)
            put.result(timeout=60)  # a budget smaller than one message must not hang it
            assert cloud.get_object("budget-huge") == huge
        finally:
            cloud.close()  # fails anything still waiting, so the pool can shut down
            pool.shutdown(wait=False)
    finally:
        assert c.stop() == 0


def test_second_instance_on_the_same_port_fails_clearly(cluster, tmp_path):
    addr = cluster.url.removeprefix("ws://")
    second = LocalCluster("--client-listen", addr, tmp=tmp_path)
    assert not second.wait_ready()
    assert second.stop() != 0
    err = second.log_text()  # complete: the process wrote it and exited
    assert addr in err and "in use" in err, err


def test_await_with_delete_deletes_no_platform_key(url, cloud):
    cloud.register(lambda cb: 1, "kept_by_await")
    key = "__cloudburst/functions/kept_by_await"
    with raw(url) as ws:
        r = request(ws, msgpack.packb({"v": 1, "id": 1, "op": "await", "call": 1, "key": key,
                                       "timeout_ms": 100, "delete": True}))
    assert r["err"]["code"] == "invalid_request", r
    assert cloud.exec_func("kept_by_await", []).get(timeout=60) == 1
