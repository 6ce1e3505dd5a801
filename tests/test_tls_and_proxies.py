"""HTTPS against a sandbox with a throwaway certificate authority, and calls through a proxy."""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from urllib3.exceptions import InsecureRequestWarning

import mlops_nb as mlops
from mlops_nb.sandbox import Sandbox
from tests.deploying import deploy, experiment_with, iris_model, wait_for_state
from tests.test_sandbox_demo_cli import READY, Running


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A CA made for this test run, and a certificate it signed for 127.0.0.1 and localhost."""
    where = tmp_path_factory.mktemp("pki")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("mlops_nb test CA")).issuer_name(_name("mlops_nb test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    files = {"ca": where / "ca.pem", "cert": where / "cert.pem", "key": where / "key.pem"}
    files["ca"].write_bytes(ca.public_bytes(pem))
    files["cert"].write_bytes(leaf.public_bytes(pem))
    files["key"].write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return files


@pytest.fixture(scope="module")
def https(pki: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(db=str(tmp_path_factory.mktemp("tls") / "s.sqlite3"), data="empty", tls_cert=pki["cert"],
                 tls_key=pki["key"], tls_ca=pki["ca"]) as sb:
        yield sb


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("MLOPS_AUTH_CA_FILE_OVERRIDE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "HTTP_PROXY", "http_proxy",
                 "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def _provider(sb: Sandbox, **kwargs: object) -> mlops.TokenProvider:
    return mlops.TokenProvider(sb.refresh_token("alice"), sb.client_id, sb.token_endpoint, **kwargs)


def test_verification_is_on_by_default_and_the_failure_says_how_to_fix_it(https: Sandbox, clean_env) -> None:
    assert https.gateway_url.startswith("https://")
    client = mlops.Client(https.gateway_url, lambda: "token")
    with pytest.raises(mlops.ConnectionFailed) as gateway:
        client.storage.user.who_am_i()
    with pytest.raises(mlops.ConnectionFailed) as idp:
        _provider(https)()
    for error in (gateway.value, idp.value):
        assert "TLS verification failed" in str(error)
        assert "ca_bundle='/path/to/ca.pem'" in str(error) and "REQUESTS_CA_BUNDLE" in str(error)
        assert not isinstance(error, mlops.WriteOutcomeUnknown)
    assert "certificate verify failed" in str(gateway.value)


def test_a_ca_bundle_given_once_serves_gateway_and_token_endpoint(https: Sandbox, pki, clean_env) -> None:
    to_client = mlops.Client(https.gateway_url, _provider(https), ca_bundle=str(pki["ca"]))
    assert to_client.storage.user.who_am_i().user.username == "alice"
    to_provider = mlops.Client(https.gateway_url, _provider(https, ca_bundle=str(pki["ca"])))
    assert to_provider.storage.user.who_am_i().user.username == "alice"


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "MLOPS_AUTH_CA_FILE_OVERRIDE"])
def test_ca_file_variables_are_honoured(https: Sandbox, pki, clean_env, variable: str) -> None:
    clean_env.setenv(variable, str(pki["ca"]))
    client = mlops.Client(https.gateway_url, _provider(https))
    assert client.storage.user.who_am_i().user.username == "alice"


def test_the_legacy_variable_wins_over_requests_ca_bundle(https: Sandbox, pki, clean_env) -> None:
    # As in the legacy client, MLOPS_AUTH_CA_FILE_OVERRIDE names the CA for both servers, even
    # where REQUESTS_CA_BUNDLE points at the system's bundle (as this machine's does).
    clean_env.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    clean_env.setenv("MLOPS_AUTH_CA_FILE_OVERRIDE", str(pki["ca"]))
    assert mlops.Client(https.gateway_url, _provider(https)).storage.user.who_am_i().user.username == "alice"


def test_a_missing_ca_file_is_named(https: Sandbox, tmp_path, clean_env) -> None:
    with pytest.raises(ValueError, match="ca_bundle names .*missing.pem.*which is not a file"):
        mlops.Client(https.gateway_url, lambda: "t", ca_bundle=str(tmp_path / "missing.pem"))
    clean_env.setenv("MLOPS_AUTH_CA_FILE_OVERRIDE", str(tmp_path / "gone.pem"))
    with pytest.raises(ValueError, match="MLOPS_AUTH_CA_FILE_OVERRIDE names"):
        mlops.Client(https.gateway_url, lambda: "t")


def test_verify_false_warns_once_per_server(https: Sandbox, clean_env) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            client = mlops.Client(https.gateway_url, _provider(https, verify=False), verify=False)
            for _ in range(3):
                assert client.storage.user.who_am_i().user.username == "alice"
    ours = [w for w in caught if issubclass(w.category, mlops.InsecureTLSWarning)]
    assert sorted(str(w.message).split(" (verify=False)")[0] for w in ours) == [
        f"TLS certificate verification is off for {https.gateway_url}",
        f"TLS certificate verification is off for {https.token_endpoint}"]
    assert [w for w in caught if issubclass(w.category, InsecureRequestWarning)] == []


def test_the_cli_serves_https(pki, tmp_path) -> None:
    running = Running("sandbox", "--port", "0", "--db", str(tmp_path / "cli.sqlite3"), "--data", "empty",
                      "--tls-cert", str(pki["cert"]), "--tls-key", str(pki["key"]), "--tls-ca", str(pki["ca"]))
    try:
        banner = running.until(READY)
    finally:
        code, _ = running.stop(signal.SIGINT)
    assert code == 0
    assert banner[0].startswith("mlops_nb sandbox: gateway at https://127.0.0.1:")
    assert any(line.startswith(f"# HTTPS: trust {pki['ca']}") for line in banner)


def test_the_cli_refuses_a_certificate_without_its_key(pki, capsys) -> None:
    from mlops_nb.cli import main

    assert main(["sandbox", "--tls-cert", str(pki["cert"]), "--port", "0", "--db", ":memory:"]) == 2
    assert "needs both tls_cert and tls_key" in capsys.readouterr().err


# -- proxies --------------------------------------------------------------------------------------


class ForwardProxy(ThreadingHTTPServer):
    """A plain HTTP forward proxy on loopback that counts what passes through it."""

    daemon_threads = True

    def __init__(self, hold_scoring: float = 0.0) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.seen: list[str] = []
        self.hold_scoring = hold_scoring  # seconds a score request waits before it goes on (a slow batch)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> ForwardProxy:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _forward(self) -> None:
        target = urlsplit(self.path)  # absolute form: a proxy is asked for the whole URL
        self.server.seen.append(target.path)  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.command == "POST" and target.path.endswith("/model/score"):
            time.sleep(self.server.hold_scoring)  # type: ignore[attr-defined]
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-connection", "connection")}
        upstream.request(self.command, target.path + (f"?{target.query}" if target.query else ""), body, headers)
        answer = upstream.getresponse()
        data = answer.read()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        upstream.close()

    do_GET = do_POST = _forward

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(db=str(tmp_path_factory.mktemp("proxied") / "s.sqlite3"), data="empty") as sb:
        yield sb


def test_the_proxy_variables_apply(plain: Sandbox, clean_env) -> None:
    with ForwardProxy() as proxy:
        clean_env.setenv("HTTP_PROXY", proxy.url)
        client = mlops.Client(plain.gateway_url, _provider(plain))
        assert client.storage.user.who_am_i().user.username == "alice"
    assert "/storage/ai.h2o.storage.UserService/WhoAmI" in proxy.seen
    assert "/auth/realms/mlops/protocol/openid-connect/token" in proxy.seen


def test_explicit_proxies_win_over_the_variables(plain: Sandbox, clean_env) -> None:
    clean_env.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    with ForwardProxy() as proxy:
        provider = _provider(plain, proxies={"http": proxy.url})
        client = mlops.Client(plain.gateway_url, provider, proxies={"http": proxy.url})
        assert client.storage.user.who_am_i().user.username == "alice"
    # Every request went through the explicit proxy: the token, the probe that finds the API's
    # generation (on first use), the call.
    assert proxy.seen == ["/auth/realms/mlops/protocol/openid-connect/token",
                          "/deployer/ai.h2o.deploy.VersionService/GetVersion",
                          "/storage/ai.h2o.storage.UserService/WhoAmI"]


# -- scoring through the client's own transport ---------------------------------------------------


def _iris_deployment(client: mlops.Client) -> str:
    data, _, _ = iris_model()
    project = client.storage.project.create_project(project={"display_name": "scoring"}).project.id
    deployment = deploy(client, project, experiment_with(client, project, data)).id
    healthy = wait_for_state(client, deployment, "HEALTHY", "FAILED")
    assert healthy.state.value == "HEALTHY", healthy.message
    return deployment


@pytest.fixture(scope="module")
def plain_deployment(plain: Sandbox) -> str:
    with mlops.Client(plain.gateway_url, _provider(plain)) as client:
        return _iris_deployment(client)


@pytest.fixture(scope="module")
def https_deployment(https: Sandbox, pki: dict[str, Path]) -> str:
    with mlops.Client(https.gateway_url, _provider(https, ca_bundle=str(pki["ca"]))) as client:
        return _iris_deployment(client)


def _same_as_the_model(scored: object, rows: int = 20) -> None:
    _, X, model = iris_model()
    assert scored["prediction"].tolist() == model.predict(X.head(rows)).tolist()  # type: ignore[index]


def test_score_goes_through_the_clients_proxy(plain: Sandbox, plain_deployment: str, clean_env) -> None:
    clean_env.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there: only the client's proxy works
    _, X, _ = iris_model()
    with ForwardProxy() as proxy:
        client = mlops.Client(plain.gateway_url, _provider(plain, proxies={"http": proxy.url}),
                              proxies={"http": proxy.url})
        _same_as_the_model(mlops.score(client, plain_deployment, X.head(20)))
    scoring = f"/deployments/{plain_deployment}/model"
    assert f"{scoring}/schema" in proxy.seen and f"{scoring}/score" in proxy.seen


def test_score_never_sends_a_batch_again_after_its_answer_is_late(plain: Sandbox, plain_deployment: str,
                                                                   clean_env) -> None:
    _, X, _ = iris_model()
    with ForwardProxy(hold_scoring=3.0) as proxy:
        # The client's default retry policy is on; its read timeout is shorter than the batch takes.
        client = mlops.Client(plain.gateway_url, _provider(plain), proxies={"http": proxy.url}, timeout=(5, 1.0))
        with pytest.raises(mlops.WriteOutcomeUnknown, match="may or may not have been scored.*not sent again"):
            mlops.score(client, plain_deployment, X.head(20))
        time.sleep(4)  # long enough for any second attempt to have reached the proxy
    assert proxy.seen.count(f"/deployments/{plain_deployment}/model/score") == 1


def test_score_uses_the_clients_ca_bundle_and_verify(https: Sandbox, pki, https_deployment: str, clean_env) -> None:
    # REQUESTS_CA_BUNDLE names the system's authorities, which do not know the sandbox's own: the
    # client's ca_bundle must win for scoring as it does for every other call.
    clean_env.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    _, X, _ = iris_model()
    trusting = mlops.Client(https.gateway_url, _provider(https, ca_bundle=str(pki["ca"])), ca_bundle=str(pki["ca"]))
    _same_as_the_model(mlops.score(trusting, https_deployment, X.head(20)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", mlops.InsecureTLSWarning)  # shown once per process; tested above
        warnings.simplefilter("ignore", InsecureRequestWarning)
        unverified = mlops.Client(https.gateway_url, _provider(https, verify=False), verify=False)
        _same_as_the_model(mlops.score(unverified, https_deployment, X.head(20)))
