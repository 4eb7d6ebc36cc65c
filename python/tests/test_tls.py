"""TLS on the client endpoints: a real `cloudburst local` serving `wss://` and `https://`
with a test certificate that `cloudburst cert` made; the sync and asyncio clients with and
without the authority's file; the dashboard and /metrics over https; bad certificates
refused at start in one line."""

import asyncio
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest

import cloudburst
import dashboard_browser
from cloudburst.aio import AsyncCloudburstConnection
from conftest import ROOT, binary, child_env, local_token, start_cluster

ARTIFACTS = ROOT / "test-artifacts"
CERT_SECONDS = 30
START_SECONDS = 60


def make_certificates(out):
    done = subprocess.run([binary(), "cert", "--out", str(out), "--hosts", "127.0.0.1,localhost"],
                          capture_output=True, text=True, timeout=CERT_SECONDS, env=child_env())
    assert done.returncode == 0, done.stderr
    assert "ca.pem" in done.stdout
    return out / "ca.pem", out / "cert.pem", out / "key.pem"


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tls")
    ca, cert, key = make_certificates(tmp / "certs")
    c = start_cluster("--tls-cert", str(cert), "--tls-key", str(key), tmp=tmp)
    yield c, ca
    assert c.stop() == 0


def square(cb, x):
    return x * x


def test_the_gateway_serves_wss_and_a_client_with_the_ca_file_calls(tls):
    c, ca = tls
    assert c.url.startswith("wss://") and c.dashboard.startswith("https://")
    with cloudburst.CloudburstConnection(c.url, ca_file=str(ca)) as cloud:
        f = cloud.register(square, "tls_square")
        assert f(7).get() == 49
        cloud.put_object("tls-key", {"a": 1})
        assert cloud.get_object("tls-key") == {"a": 1}


def test_the_ca_file_can_come_from_the_environment(tls, monkeypatch):
    c, ca = tls
    monkeypatch.setenv("CLOUDBURST_CA_FILE", str(ca))
    with cloudburst.CloudburstConnection(c.url) as cloud:
        cloud.put_object("tls-env", 3)
        assert cloud.get_object("tls-env") == 3


def test_the_asyncio_client_connects_over_wss(tls):
    c, ca = tls

    async def run():
        cloud = await AsyncCloudburstConnection.connect(c.url, ca_file=ca)
        try:
            await cloud.put_object("tls-aio", [1, 2])
            return await cloud.get_object("tls-aio")
        finally:
            await cloud.close()

    assert asyncio.run(run()) == [1, 2]


def test_a_client_without_the_ca_file_is_refused_with_a_certificate_error(tls, monkeypatch):
    c, _ = tls
    monkeypatch.delenv("CLOUDBURST_CA_FILE", raising=False)
    with pytest.raises(cloudburst.CloudburstError) as sync_err:
        cloudburst.CloudburstConnection(c.url)

    async def run():
        await AsyncCloudburstConnection.connect(c.url)

    with pytest.raises(cloudburst.CloudburstError) as aio_err:
        asyncio.run(run())
    for e in (sync_err.value, aio_err.value):
        assert e.code == "connection_failed"
        assert "certificate is not trusted" in e.message and "ca_file=" in e.message, e.message


def test_a_plain_ws_url_with_a_ca_file_and_a_missing_ca_file_are_clear_errors(tls, tmp_path):
    c, ca = tls
    with pytest.raises(cloudburst.CloudburstError, match="ca_file= is for wss://"):
        cloudburst.CloudburstConnection(c.url.replace("wss://", "ws://"), ca_file=str(ca))
    with pytest.raises(cloudburst.CloudburstError, match="no such file"):
        cloudburst.CloudburstConnection(c.url, ca_file=str(tmp_path / "missing.pem"))


def https_status(url, context, token=None):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_the_dashboard_and_metrics_are_served_over_https_with_the_token(tls):
    c, ca = tls
    trusted = ssl.create_default_context(cafile=str(ca))
    token = local_token()
    base = c.dashboard.rstrip("/")
    status, body = https_status(base + "/metrics", trusted, token)
    assert status == 200 and b"# TYPE" in body
    assert https_status(base + "/", trusted, token)[0] == 200
    assert https_status(base + "/metrics", trusted)[0] == 401, "the token is still needed"
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        https_status(base + "/metrics", ssl.create_default_context(), token)


def test_the_dashboard_page_updates_live_over_https(tls):
    c, ca = tls
    # The browser test is of the page over TLS (its event stream included); whether the
    # certificate is trusted is the clients' test above. Chromium keeps trusted
    # authorities in a profile database, so this browser skips the check instead.
    state = dashboard_browser.check_dashboard(
        c.dashboard, local_token(), texts=["alive"], timeout=30.0,
        flags=["--ignore-certificate-errors"],
        screenshot=str(ARTIFACTS / "dashboard-https.png"))
    assert "KVS shards" in state["text"]


def start_failure(*args):
    done = subprocess.run([binary(), "local", "--ephemeral", "--listen", "127.0.0.1:0",
                           "--client-listen", "127.0.0.1:0", "--dashboard-listen", "127.0.0.1:0",
                           *args], capture_output=True, text=True, timeout=START_SECONDS,
                          env=child_env({"RUST_LOG": "error"}))
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    return done.returncode, errors


def test_a_bad_or_missing_certificate_is_one_line_at_start(tmp_path):
    ca, cert, key = make_certificates(tmp_path / "certs")
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    cases = [
        (["--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", str(key)],
         "gateway.tls_cert", "cannot read it"),
        (["--tls-cert", str(tmp_path / "junk.pem"), "--tls-key", str(key)],
         "gateway.tls_cert", "no PEM certificate"),
        (["--tls-cert", str(ca), "--tls-key", str(key)], "do not go together", ""),
    ]
    for args, names, why in cases:
        code, errors = start_failure(*args)
        assert code == 1 and len(errors) == 1, (args, code, errors)
        assert names in errors[0] and why in errors[0], errors
    code, errors = start_failure("--tls-cert", str(cert))
    assert code == 2 and "--tls-key" in errors[0], errors
