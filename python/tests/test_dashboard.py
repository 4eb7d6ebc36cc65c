"""The dashboard and /metrics from the outside: real `cloudburst` processes on 127.0.0.1,
a real Prometheus text parser (prometheus_client), a real browser (headless Chromium).

Two clusters:
- `gateway_node`: `cloudburst node --roles kvs,gateway` (works today): auth, parsing,
  the page showing the node and its shards.
- `local_cluster`: `cloudburst local` + the Python client: function calls show on the page
  without a reload and /metrics counts equal the calls.
"""

import pathlib
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

import dashboard_browser
from cloudburst import CloudburstConnection
from conftest import Proc, binary, http_get

ROOT = pathlib.Path(__file__).resolve().parents[2]
BINARY = pathlib.Path(binary())
ARTIFACTS = ROOT / "test-artifacts"
TOKEN = "py-dash-token"
SECRET = "py-dash-secret"
READY_SECONDS = 15
CALLS = 5
DASHBOARD_LINE = re.compile(r"dashboard\S* .*?(http://\S+?)/?$")
CLIENT_URL = re.compile(r"(ws://\S+)")
NODE_LINE = re.compile(r"^cloudburst node (\S+) listening on ")


def families(text):
    return {f.name: f for f in text_string_to_metric_families(text)}


@pytest.fixture(scope="module")
def gateway_node(tmp_path_factory):
    if not BINARY.exists():
        pytest.fail(f"{BINARY} is missing: run `cargo build --bins` (scripts/test.sh does)")
    log = tmp_path_factory.mktemp("dash") / "node.log"
    p = Proc(["node", "--bootstrap", "--roles", "kvs,gateway", "--kvs-shards", "2",
              "--listen", "127.0.0.1:0", "--client-listen", "127.0.0.1:0",
              "--dashboard-listen", "127.0.0.1:0"], log,
             env={"CLOUDBURST_CLUSTER_SECRET": SECRET, "CLOUDBURST_TOKEN": TOKEN})
    try:
        found = p.wait_for({"url": DASHBOARD_LINE, "node": NODE_LINE})
        assert found["url"] and found["node"], f"node exited; log:\n{p.log_text()}"
        yield found["url"] + "/", found["node"]
    finally:
        p.stop()


def test_protected_endpoints_answer_401_without_the_token(gateway_node):
    url, _ = gateway_node
    for path in ["", "assets/app.js", "api/snapshot", "api/events", "metrics"]:
        status, headers, body = http_get(url + path)
        assert status == 401, path
        assert headers.get("www-authenticate") == "Bearer"
        assert "missing_token" in body
    assert http_get(url + "metrics", token=TOKEN)[0] == 200
    assert http_get(url + "healthz")[0] == 200


def test_metrics_parse_and_name_every_kvs_shard(gateway_node):
    url, node = gateway_node
    status, headers, text = http_get(url + "metrics", token=TOKEN)
    assert status == 200 and headers["content-type"].startswith("text/plain; version=0.0.4")
    fams = families(text)
    assert fams["cloudburst_function_calls"].type == "counter"
    assert fams["cloudburst_function_duration_seconds"].type == "histogram"
    assert fams["cloudburst_dag_calls"].type == "counter"
    up = {s.labels["node"]: s.value for s in fams["cloudburst_node_up"].samples}
    assert up == {node: 1.0}
    roles = {s.labels["role"] for s in fams["cloudburst_node_role"].samples}
    assert roles == {"kvs", "gateway"}
    keys = fams["cloudburst_kvs_keys"]
    assert keys.type == "gauge"
    assert sorted(s.labels["shard"] for s in keys.samples) == ["0", "1"]
    assert all(s.labels["node"] == node for s in keys.samples)
    assert fams["cloudburst_kvs_puts"].type == "counter"
    assert fams["cloudburst_transport_frames_in"].samples[0].labels == {"node": node}


def test_page_shows_the_node_its_roles_and_shards(gateway_node):
    url, node = gateway_node
    state = dashboard_browser.check_dashboard(
        url, TOKEN, texts=[node, "kvs, gateway", "alive"], kvs_keys=0,
        screenshot=str(ARTIFACTS / "dashboard-python-node.png"))
    assert "KVS shards" in state["text"]


@pytest.fixture(scope="module")
def local_cluster(tmp_path_factory):
    log = tmp_path_factory.mktemp("local") / "local.log"
    p = Proc(["local", "--ephemeral", "--listen", "127.0.0.1:0",
              "--client-listen", "127.0.0.1:0", "--dashboard-listen", "127.0.0.1:0"], log,
             env={"CLOUDBURST_TOKEN": TOKEN})
    try:
        found = p.wait_for({"dashboard": DASHBOARD_LINE, "client": CLIENT_URL})
        assert all(found.values()), f"cloudburst local did not start; log:\n{p.log_text()}"
        with CloudburstConnection(found["client"], token=TOKEN) as cloud:
            yield found["dashboard"] + "/", cloud
    finally:
        p.stop()


def test_function_calls_show_live_and_metrics_count_them(local_cluster):
    url, cloud = local_cluster
    square = cloud.register(lambda cb, x: x * x, "dash_square")
    results = []

    def call_while_the_page_is_open():
        results.extend(square(i).get() for i in range(CALLS))

    dashboard_browser.check_dashboard(
        url, TOKEN, texts=["dash_square"], functions=[("dash_square", CALLS)],
        screenshot=str(ARTIFACTS / "dashboard-local.png"), on_ready=call_while_the_page_is_open)
    assert results == [i * i for i in range(CALLS)]
    fams = families(http_get(url + "metrics", token=TOKEN)[2])
    calls = [s for s in fams["cloudburst_function_calls"].samples
             if s.labels.get("function") == "dash_square" and s.name.endswith("_total")]
    assert sum(s.value for s in calls) == CALLS
    assert {s.labels["status"] for s in calls} == {"ok", "error"}
    count = [s for s in fams["cloudburst_function_duration_seconds"].samples
             if s.name.endswith("_count") and s.labels.get("function") == "dash_square"]
    assert [s.value for s in count] == [CALLS]
