"""The login form, driven headless (``Button.click()``) against a real sandbox over loopback."""

from __future__ import annotations

import datetime
import ipaddress
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import ipywidgets
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import mlops_nb
from mlops_nb.notebook import session
from mlops_nb.notebook.login import LoginForm, config_path, login_settings
from mlops_nb.sandbox import Sandbox
from tests.capture import CaptureServer


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(db=str(tmp_path_factory.mktemp("login") / "s.sqlite3"), data="demo",
                 device_poll_interval=0) as sandbox:
        yield sandbox


@pytest.fixture(autouse=True)
def logged_out() -> Iterator[None]:
    session.logout()
    yield
    session.logout()


def _form(sb: Sandbox, **kwargs: Any) -> LoginForm:
    options: dict[str, Any] = {"gateway_url": sb.gateway_url, "token_endpoint": sb.token_endpoint,
                               "client_id": sb.client_id, "background": False, "environ": {}}
    options.update(kwargs)
    return LoginForm(**options)


def _widget_state(widget: ipywidgets.Widget) -> str:
    """Everything the form's widgets would sync to the browser (and save into a notebook)."""
    states = []

    def walk(w: ipywidgets.Widget) -> None:
        states.append(w.get_state())
        for child in getattr(w, "children", ()):
            walk(child)

    walk(widget)
    return json.dumps(states, default=str)


def _headline(form: LoginForm) -> str:
    match = re.search(r"<b>(.*?)</b>", form.status.value)
    return match.group(1) if match else ""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- logging in ------------------------------------------------------------------------------------


def test_refresh_token_pasted_and_clicked_logs_in(sb: Sandbox) -> None:
    form = _form(sb)
    token = sb.refresh_token("alice")
    busy: list[bool] = []
    progress: list[str] = []
    form.login_button.observe(lambda change: busy.append(change["new"]), "disabled")
    form.status.observe(lambda change: progress.append(change["new"]), "value")
    form.refresh_token.value = token
    form.login_button.click()
    assert busy == [True, False]
    assert any("Exchanging the refresh token" in p for p in progress)
    assert form.error is None
    assert form.user.username == "alice"
    assert isinstance(form.client, mlops_nb.Client)
    assert mlops_nb.current_client() is form.client and session.current_user() is form.user
    assert "Logged in as alice" in form.status.value
    assert "alice" in form.card.value and "mlops-nb-card" in form.card.value
    assert not form.login_button.disabled and form.login_button.description == "Log in"
    assert form.refresh_token.value == ""
    access = form.client.token_provider()
    state = _widget_state(form)
    assert token not in state and access not in state
    assert token not in repr(form) and access not in repr(form)


def test_an_issuer_is_resolved_by_discovery(sb: Sandbox) -> None:
    form = _form(sb, token_endpoint=sb.issuer)
    form.refresh_token.value = sb.refresh_token("bob")
    form.login_button.click()
    assert form.error is None and form.user.username == "bob"


def test_an_h2o_ai_cloud_url_finds_the_rest_and_logs_in_to_the_workspaces_generation(sb: Sandbox) -> None:
    # Only the environment's URL and its platform token: discovery names the gateway, the authz
    # gateway, the issuer and the platform client (the fields for a gateway are not needed).
    form = LoginForm(cloud_url=sb.gateway_url, background=False, environ={})
    progress: list[str] = []
    form.status.observe(lambda change: progress.append(change["new"]), "value")
    token = sb.refresh_token("alice")
    form.refresh_token.value = token
    form.login_button.click()
    assert form.error is None, form.status.value
    assert any("discovery documents" in p for p in progress)
    assert form.client.generation == "workspaces" and form.client.authz_gateway_url == sb.authz_gateway_url
    assert type(form.user).__name__ == "V1User" and form.user.login_principal == "alice"
    assert "Logged in as alice" in form.status.value and "workspaces" in form.status.value
    assert "alice" in form.card.value and "mlops-nb-card" in form.card.value
    assert mlops_nb.current_client() is form.client
    assert token not in _widget_state(form) and form.refresh_token.value == ""
    # the client it made lists workspaces as frames
    assert "name" in form.client.authz.workspace.list_workspaces().columns


def test_the_platform_token_variable_serves_an_h2o_ai_cloud_url(sb: Sandbox) -> None:
    form = LoginForm(cloud_url=sb.gateway_url, background=False,
                     environ={"H2O_CLOUD_CLIENT_PLATFORM_TOKEN": sb.refresh_token("bob")})
    form.login_button.click()
    assert form.error is None and form.user.login_principal == "bob"
    assert sb.refresh_token("bob") not in _widget_state(form)


def test_a_url_without_discovery_documents_says_so(sb: Sandbox) -> None:
    with CaptureServer() as server:
        server.default.status = 404
        form = LoginForm(cloud_url=server.url, background=False, environ={})
        form.refresh_token.value = "whatever"
        form.login_button.click()
    assert _headline(form) == "H2O AI Cloud discovery failed"
    assert "without a discovery document" in form.status.value and form.client is None


def test_sign_in_with_browser_through_an_h2o_ai_cloud_url(sb: Sandbox) -> None:
    form = LoginForm(cloud_url=sb.gateway_url, background=True, environ={})
    form.browser_button.click()
    _decide(sb, _wait_for_code(form).user_code, "approve", "bob")
    assert form.wait(10)
    assert form.error is None and form.user.login_principal == "bob" and form.client.generation == "workspaces"


def test_enter_in_the_token_field_submits(sb: Sandbox) -> None:
    form = _form(sb)
    form.refresh_token.value = sb.refresh_token("alice")
    # What the browser sends when Enter is pressed in a text field (ipywidgets 8's TextView).
    form.refresh_token._handle_msg({"content": {"data": {"method": "custom", "content": {"event": "submit"}}},
                                    "buffers": []})
    assert form.user is not None and form.user.username == "alice"


def test_refresh_token_from_the_environment_never_enters_a_widget(sb: Sandbox) -> None:
    token = sb.refresh_token("alice")
    seen: list[Any] = []
    form = _form(sb, environ={"REFRESH_TOKEN": token})
    form.refresh_token.observe(lambda change: seen.append(change["new"]), "value")
    assert "REFRESH_TOKEN is set" in form._token_note.value
    form.login_button.click()
    assert form.user.username == "alice"
    assert token not in seen and form.refresh_token.value == ""
    assert token not in _widget_state(form)


def test_fields_prefill_from_the_environment_over_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"gateway_url": "https://from-config", "token_endpoint": "https://idp/realms/x",
                                  "client_id": "config-client", "verify_tls": False, "refresh_token": "ignored"}))
    environ = {"MLOPS_NB_CONFIG": str(config), "H2O_MLOPS_GATEWAY": "https://from-env"}
    assert config_path(environ) == config
    form = LoginForm(environ=environ, background=False)
    assert form.gateway_url.value == "https://from-env"
    assert form.token_endpoint.value == "https://idp/realms/x"
    assert form.client_id.value == "config-client"
    assert form.verify_tls.value is False
    assert form.refresh_token.value == ""
    explicit = LoginForm(client_id="given", environ=environ, background=False)
    assert explicit.client_id.value == "given"


def test_default_config_file_is_under_xdg_config_home(tmp_path: Path) -> None:
    assert config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "mlops_nb" / "config.json"
    (tmp_path / "mlops_nb").mkdir()
    (tmp_path / "mlops_nb" / "config.json").write_text("{not json")
    values, problem = login_settings({"XDG_CONFIG_HOME": str(tmp_path)})
    assert values.gateway_url == "" and "could not read" in problem


def test_missing_fields_get_their_own_messages_and_no_request_is_made() -> None:
    form = LoginForm(environ={"MLOPS_NB_CONFIG": "/nonexistent/config.json"}, background=False)
    form.token_endpoint.value = "not a url"
    form.login_button.click()
    messages = {name: w.value for name, w in form._field_messages.items()}
    assert "Enter the gateway URL" in messages["gateway_url"]
    assert "http:// or https://" in messages["token_endpoint"]
    assert "client ID" in messages["client_id"]
    assert "Paste your refresh token" in messages["refresh_token"]
    assert messages["ca_bundle"] == ""
    assert _headline(form) == "Some fields need attention"
    assert form.client is None and form.error is None


def test_with_an_h2o_ai_cloud_url_only_it_and_a_token_are_asked_for() -> None:
    environ = {"MLOPS_NB_CONFIG": "/nonexistent/config.json", "H2O_CLOUD_ENVIRONMENT": "ftp://cloud.example.com"}
    form = LoginForm(environ=environ, background=False)
    assert form.cloud_url.value == "ftp://cloud.example.com"  # prefilled from the variable h2o-mlops reads
    form.login_button.click()
    messages = {name: w.value for name, w in form._field_messages.items()}
    assert "H2O AI Cloud URL must be an http:// or https:// URL" in messages["cloud_url"]
    assert messages["gateway_url"] == messages["token_endpoint"] == messages["client_id"] == ""
    assert "Paste your refresh token" in messages["refresh_token"]
    assert form.client is None and form.error is None


# -- signing in with the browser (device grant) ----------------------------------------------------------


def _wait_for_code(form: LoginForm) -> Any:
    deadline = time.monotonic() + 10
    while form.pending_sign_in is None or not form.device.value:
        assert time.monotonic() < deadline, form.status.value
        time.sleep(0.02)
    return form.pending_sign_in


def _decide(sb: Sandbox, user_code: str, action: str, username: str = "alice") -> None:
    response = requests.post(f"{sb.issuer}/device", data={"user_code": user_code, "username": username,
                                                          "password": username, "action": action}, timeout=10)
    assert response.status_code == 200


def test_sign_in_with_browser_approved(sb: Sandbox) -> None:
    form = _form(sb, token_endpoint=sb.issuer, background=True)
    form.browser_button.click()
    pending = _wait_for_code(form)
    assert pending.user_code in form.device.value
    assert f'<a href="{pending.verification_uri_complete}"' in form.device.value.replace("&amp;", "&")
    assert form.cancel_button.layout.display is None
    _decide(sb, pending.user_code, "approve", "bob")
    assert form.wait(10)
    assert form.error is None and form.user.username == "bob"
    assert mlops_nb.current_client() is form.client
    assert form.device.value == "" and form.cancel_button.layout.display == "none"
    assert form.pending_sign_in is None


def test_sign_in_with_browser_denied(sb: Sandbox) -> None:
    form = _form(sb, background=True)
    form.browser_button.click()
    _decide(sb, _wait_for_code(form).user_code, "deny")
    assert form.wait(10)
    assert _headline(form) == "The sign-in was denied"
    assert form.client is None


def test_sign_in_with_browser_cancelled(sb: Sandbox) -> None:
    form = _form(sb, background=True)
    form.browser_button.click()
    _wait_for_code(form)
    form.cancel_button.click()
    assert form.wait(10)
    assert _headline(form) == "Sign-in cancelled."
    assert form.client is None and form.error is None
    assert not form.browser_button.disabled


def test_an_identity_provider_without_the_device_grant_says_so(sb: Sandbox) -> None:
    with CaptureServer() as idp:
        idp.respond("/realm/.well-known/openid-configuration",
                    {"issuer": idp.url + "/realm", "token_endpoint": idp.url + "/realm/token"})
        form = _form(sb, token_endpoint=idp.url + "/realm", background=True)
        form.browser_button.click()
        assert form.wait(10)
    assert _headline(form) == "This identity provider does not offer that way of signing in"
    assert "refresh token instead" in form.status.value


def test_the_verification_link_is_escaped() -> None:
    form = LoginForm(environ={}, background=False)
    device = mlops_nb.DeviceLogin("http://x/device", "http://x/token", "c", user_code="<b>X</b>",
                                  verification_uri="javascript:alert(1)",
                                  verification_uri_complete="javascript:alert(1)", expires_in=60)
    form._show_device(device)
    assert "<b>X</b>" not in form.device.value and "&lt;b&gt;X&lt;/b&gt;" in form.device.value
    assert "<a href" not in form.device.value


# -- failures, in words a user can act on -------------------------------------------------------------------


def test_unreachable_gateway(sb: Sandbox) -> None:
    form = _form(sb, gateway_url=f"http://127.0.0.1:{_closed_port()}")
    form.refresh_token.value = sb.refresh_token("alice")
    form.login_button.click()
    assert _headline(form) == "Cannot reach the MLOps gateway"
    assert isinstance(form.error, mlops_nb.ConnectionFailed)
    assert "check the URL" in form.status.value
    assert form.client is None and not form.login_button.disabled
    with pytest.raises(session.NotLoggedIn):
        session.current_client()


def test_unreachable_identity_provider(sb: Sandbox) -> None:
    form = _form(sb, token_endpoint=f"http://127.0.0.1:{_closed_port()}/auth/realms/x")
    form.refresh_token.value = sb.refresh_token("alice")
    form.login_button.click()
    assert _headline(form) == "Cannot reach the identity provider"


def test_wrong_token_endpoint(sb: Sandbox) -> None:
    form = _form(sb, token_endpoint=sb.issuer + "/protocol/openid-connect/nope")
    form.refresh_token.value = sb.refresh_token("alice")
    form.login_button.click()
    assert _headline(form) == "That URL is not an issuer or token endpoint"
    assert "token endpoint" in form.status.value


def test_invalid_grant_keeps_no_token_and_says_to_get_a_new_one(sb: Sandbox) -> None:
    form = _form(sb)
    bad = sb.refresh_token("alice")[:-6] + "AAAAAA"
    form.refresh_token.value = bad
    form.login_button.click()
    assert _headline(form).startswith("The refresh token was refused")
    assert form.error.error == "invalid_grant"
    assert bad not in form.status.value and bad not in _widget_state(form)
    assert "refresh_token" not in form._secrets  # a refused token is not kept for a retry


def test_a_malformed_token_is_refused_with_the_identity_providers_reason(sb: Sandbox) -> None:
    form = _form(sb)
    form.refresh_token.value = "pasted only in part"
    form.login_button.click()
    assert _headline(form) == ("The refresh token was refused: The refresh token is not a well-formed token; "
                               "copy it again in full.")
    assert form.error.error == "invalid_grant"


def test_a_pasted_token_is_kept_for_a_retry_after_a_wrong_url(sb: Sandbox) -> None:
    form = _form(sb, gateway_url=f"http://127.0.0.1:{_closed_port()}")
    form.refresh_token.value = sb.refresh_token("alice")
    form.login_button.click()
    assert form.client is None and "kept" in form._token_note.value
    form.gateway_url.value = sb.gateway_url
    form.login_button.click()
    assert form.user.username == "alice"
    assert form._token_note.value == ""


def test_gateway_rejecting_the_token(sb: Sandbox, tmp_path: Path) -> None:
    # A token from another identity provider (another sandbox): the gateway cannot verify it.
    with Sandbox(db=str(tmp_path / "other.sqlite3"), data="empty") as other:
        form = _form(sb, token_endpoint=other.token_endpoint, client_id=other.client_id)
        form.refresh_token.value = other.refresh_token("alice")
        form.login_button.click()
    assert _headline(form) == "The gateway rejected the token"
    assert isinstance(form.error, mlops_nb.Unauthenticated)
    assert "belong to this MLOps installation" in form.status.value


def test_unknown_client_id(sb: Sandbox) -> None:
    form = _form(sb, client_id="no-such-client")
    form.refresh_token.value = sb.refresh_token("alice")
    form.login_button.click()
    assert _headline(form) == "The identity provider does not accept this client ID"


# A local HTTPS server with a self-signed certificate: the real shape of a private CA.


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mlops-nb test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))

    class NotFound(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = b"not an MLOps gateway"
            self.send_response(404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"https://127.0.0.1:{server.server_address[1]}", str(cert_path)
    server.shutdown()
    server.server_close()


def test_tls_verification_failure_of_the_gateway(sb: Sandbox, tls_server: tuple[str, str]) -> None:
    url, _ = tls_server
    form = _form(sb, gateway_url=url)
    form.refresh_token.value = sb.refresh_token("alice")
    form.login_button.click()
    assert _headline(form) == "TLS verification failed for the MLOps gateway"
    assert "certificate" in form.status.value.lower()


def test_tls_verification_failure_of_the_identity_provider(sb: Sandbox, tls_server: tuple[str, str]) -> None:
    url, _ = tls_server
    form = _form(sb, token_endpoint=url + "/auth/realms/mlops")
    form.refresh_token.value = sb.refresh_token("alice")
    form.login_button.click()
    assert _headline(form) == "TLS verification failed for the identity provider"


def test_https_to_a_plain_http_port_is_a_tls_failure(sb: Sandbox) -> None:
    form = _form(sb, gateway_url=sb.gateway_url.replace("http://", "https://"))
    form.refresh_token.value = sb.refresh_token("alice")
    form.login_button.click()
    assert _headline(form) == "TLS verification failed for the MLOps gateway"


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("how", ["ca_bundle", "no_verify"])
def test_a_ca_bundle_or_no_verification_gets_past_tls(sb: Sandbox, tls_server: tuple[str, str], how: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's own CA bundle
    # (psf/requests#3829); the wire layer sets the bundle on its session, so clear them here.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    url, cert = tls_server
    form = _form(sb, gateway_url=url)
    if how == "ca_bundle":
        form.ca_bundle.value = cert
    else:
        form.verify_tls.value = False
    form.refresh_token.value = sb.refresh_token("alice")
    form.login_button.click()
    # TLS passes; the server is just not a gateway.
    assert _headline(form) == "That URL does not answer like an MLOps gateway"


def test_a_missing_ca_bundle_file_is_a_field_message(sb: Sandbox, tmp_path: Path) -> None:
    form = _form(sb, ca_bundle=str(tmp_path / "missing.pem"))
    form.refresh_token.value = sb.refresh_token("alice")
    form.login_button.click()
    assert "There is no file at" in form._field_messages["ca_bundle"].value
    assert form.advanced.selected_index == 0
    assert form.client is None


def test_login_returns_a_form_that_shows_itself(sb: Sandbox) -> None:
    form = mlops_nb.login(sb.gateway_url, sb.token_endpoint, sb.client_id, background=False)
    assert isinstance(form, ipywidgets.VBox)
    bundle = form._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
