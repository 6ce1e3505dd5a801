"""TokenProvider and DeviceLogin against the sandbox's real OpenID Connect provider over loopback."""

from __future__ import annotations

import logging
import pickle
import socket
import threading
import time

import pytest
import requests

import mlops_nb as mlops
from mlops_nb.sandbox import Sandbox
from mlops_nb.sandbox.identity import InvalidToken
from tests.capture import CaptureServer


@pytest.fixture(scope="module")
def sb(tmp_path_factory):
    with Sandbox(db=str(tmp_path_factory.mktemp("auth") / "s.sqlite3"), data="empty", token_ttl=60,
                 device_poll_interval=0) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def rotating(tmp_path_factory):
    """Refresh tokens are single use here, as with Keycloak's 'revoke refresh token' setting."""
    with Sandbox(db=str(tmp_path_factory.mktemp("auth-rotating") / "s.sqlite3"), data="empty", token_ttl=2,
                 revoke_refresh_token_on_use=True) as sandbox:
        yield sandbox


def test_exchanges_once_and_reuses_the_access_token(sb) -> None:
    provider = mlops.TokenProvider(sb.refresh_token("alice"), sb.client_id, sb.token_endpoint)
    first = provider()
    assert provider() == first and provider.refresh_count == 1
    assert sb.idp.verify_access_token(first)["preferred_username"] == "alice"


def test_refreshes_before_expiry_and_keeps_the_rotated_refresh_token(rotating) -> None:
    # Access tokens live 2 s; a 1.5 s band is capped at half the lifetime, so the provider
    # refreshes after ~1 s. Each refresh token works once, so a second refresh succeeds only
    # if the newest one was kept.
    provider = mlops.TokenProvider(rotating.refresh_token("alice"), rotating.client_id, rotating.token_endpoint,
                                   expiry_threshold_band=1.5)
    tokens = [provider()]
    time.sleep(0.6)
    assert provider() == tokens[0]  # inside the first half of its life: kept
    for _ in range(2):
        time.sleep(0.6)
        tokens.append(provider())
        time.sleep(0.6)
    assert provider.refresh_count == 3
    assert len(set(tokens)) == 3


def test_a_token_replaced_while_being_read_is_not_handed_out_expired(rotating) -> None:
    # Widens the gap a thread switch can open at any instruction: when the reading thread first looks
    # at the provider's token, another thread exchanges the refresh token. The reader must then hand
    # out the new token, not the expired one paired with the new expiry.
    reader, replaced = threading.current_thread(), []

    class WidenedGap(mlops.TokenProvider):
        def __getattribute__(self, name: str) -> object:
            value = object.__getattribute__(self, name)
            if name in ("_state", "_access_token") and threading.current_thread() is reader and not replaced:
                replaced.append(name)
                other = threading.Thread(target=self.force_refresh)
                other.start()
                other.join()
            return value

    provider = WidenedGap(rotating.refresh_token("alice"), rotating.client_id, rotating.token_endpoint)
    replaced.append("not yet")  # the first token is fetched without the widened gap
    expired = provider()
    time.sleep(2.2)  # access tokens live 2 s here
    replaced.clear()
    token = provider()
    assert replaced and provider.refresh_count == 2
    handed_out_expired = token == expired  # compared apart, so that a failure prints no token
    assert not handed_out_expired
    assert rotating.idp.verify_access_token(token)["preferred_username"] == "alice"


def test_many_threads_cause_one_refresh(sb) -> None:
    provider = mlops.TokenProvider(sb.refresh_token("bob"), sb.client_id, sb.token_endpoint)
    barrier = threading.Barrier(16)
    results: list[str] = []

    def worker() -> None:
        barrier.wait()
        results.append(provider())

    threads = [threading.Thread(target=worker) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert provider.refresh_count == 1
    assert len(set(results)) == 1


def test_invalid_grant_tells_the_user_to_log_in_again(sb, caplog) -> None:
    bad = sb.refresh_token("alice")[:-4] + "AAAA"
    provider = mlops.TokenProvider(bad, sb.client_id, sb.token_endpoint)
    with caplog.at_level(logging.DEBUG), pytest.raises(mlops.AuthenticationError) as e:
        provider()
    assert e.value.error == "invalid_grant"
    assert "log in again" in str(e.value)
    assert bad not in str(e.value) and bad not in repr(e.value) and bad not in caplog.text


def test_a_malformed_refresh_token_is_reported_in_the_identity_providers_words(sb) -> None:
    with pytest.raises(mlops.AuthenticationError) as e:
        mlops.TokenProvider("not-a-token", sb.client_id, sb.token_endpoint)()
    message = str(e.value)
    assert message.startswith("invalid_grant: The refresh token is not a well-formed token; copy it again in full.")
    assert "expired, revoked" not in message  # no guesses once the provider has said why
    assert "log in again" in message and e.value.description.startswith("The refresh token is not a well-formed")
    assert pickle.loads(pickle.dumps(e.value)).description == e.value.description


@pytest.mark.parametrize("description", [None, "Invalid refresh token", "invalid_grant"])
def test_a_refusal_that_says_no_more_than_its_code_gets_our_advice(description) -> None:
    # Keycloak answers "Invalid refresh token" for every token it cannot read.
    with CaptureServer() as server:
        body = {"error": "invalid_grant", **({"error_description": description} if description else {})}
        server.respond("/token", body, status=400)
        with pytest.raises(mlops.AuthenticationError) as e:
            mlops.TokenProvider("r", "c", server.url + "/token")()
    assert str(e.value).startswith("invalid_grant: the refresh token is expired, revoked or was issued to another "
                                   "client; log in again")
    assert e.value.description is None


def test_reused_refresh_token_is_invalid_grant_when_revoked_on_use(rotating) -> None:
    token = rotating.refresh_token("alice")
    mlops.TokenProvider(token, rotating.client_id, rotating.token_endpoint)()
    with pytest.raises(mlops.AuthenticationError, match="invalid_grant"):
        mlops.TokenProvider(token, rotating.client_id, rotating.token_endpoint)()


def test_unknown_client_is_invalid_client(sb) -> None:
    provider = mlops.TokenProvider(sb.refresh_token("alice"), "no-such-client", sb.token_endpoint)
    with pytest.raises(mlops.AuthenticationError, match="invalid_client.*CLIENT_ID"):
        provider()


def test_confidential_client_with_its_secret(sb) -> None:
    secret = sb.idp.client_secret("mlops-nb-confidential")
    token = sb.idp.issue_refresh_token("alice", client_id="mlops-nb-confidential")
    provider = mlops.TokenProvider(token, "mlops-nb-confidential", sb.token_endpoint, secret)
    assert provider()
    assert secret not in repr(provider)


def test_a_page_that_is_not_a_token_endpoint_gets_its_own_message() -> None:
    with CaptureServer() as server:
        server.respond("/token", raw=b"<html>login</html>", content_type="text/html")
        provider = mlops.TokenProvider("r", "c", server.url + "/token")
        with pytest.raises(mlops.AuthenticationError, match="not an OpenID Connect JSON response") as e:
            provider()
        assert e.value.error == "not_oidc"


def test_unreachable_token_endpoint_is_a_connection_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    provider = mlops.TokenProvider("r", "c", f"http://127.0.0.1:{port}/token")
    with pytest.raises(mlops.ConnectionFailed, match="could not reach the identity provider"):
        provider()


def test_from_issuer_uses_discovery(sb) -> None:
    provider = mlops.TokenProvider.from_issuer(sb.issuer, sb.refresh_token("alice"), sb.client_id)
    assert provider.token_endpoint_url == sb.token_endpoint
    assert provider()


def test_discovery_of_something_else_is_a_clear_error() -> None:
    with CaptureServer() as server:
        server.default.status = 404
        with pytest.raises(mlops.AuthenticationError, match="does not look like an OpenID Connect issuer"):
            mlops.discover(server.url + "/auth/realms/x")


def test_no_token_in_repr_str_or_pickle(sb) -> None:
    refresh = sb.refresh_token("alice")
    provider = mlops.TokenProvider(refresh, sb.client_id, sb.token_endpoint)
    access = provider()
    for text in (repr(provider), str(provider)):
        assert refresh not in text and access not in text
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(provider)


@pytest.mark.parametrize(("args", "words"), [(("", "c", "http://x/t"), "refresh_token is empty"),
                                              (("r", " ", "http://x/t"), "client_id is empty"),
                                              (("r", "c", "x/t"), "token_endpoint_url must start with")])
def test_bad_arguments_fail_at_construction(args, words) -> None:
    with pytest.raises(ValueError, match=words):
        mlops.TokenProvider(*args)


def test_client_refreshes_once_when_the_gateway_rejects_an_expired_token(tmp_path) -> None:
    # A negative band makes the provider hand out its token past expiry; the gateway says 401,
    # and the client must refresh and retry rather than fail.
    with Sandbox(db=str(tmp_path / "s.sqlite3"), data="empty", token_ttl=1) as sandbox:
        provider = mlops.TokenProvider(sandbox.refresh_token("alice"), sandbox.client_id, sandbox.token_endpoint,
                                       expiry_threshold_band=-30)
        client = mlops.Client(sandbox.gateway_url, provider)
        assert client.storage.user.who_am_i().user.username == "alice"
        time.sleep(2.1)
        assert client.storage.user.who_am_i().user.username == "alice"
        assert provider.refresh_count == 2


def _approve(sb, login: mlops.DeviceLogin, action: str = "approve", password: str = "alice") -> requests.Response:
    return requests.post(login.verification_uri, data={"user_code": login.user_code, "username": "alice",
                                                       "password": password, "action": action}, timeout=10)


def test_device_login_approved_in_the_browser(sb) -> None:
    login = mlops.DeviceLogin.from_issuer(sb.issuer, sb.client_id).start()
    assert login.user_code and login.verification_uri_complete.startswith(sb.issuer)
    assert login.poll_once() is None  # authorization_pending
    assert _approve(sb, login).status_code == 200
    provider = login.poll(sleep=lambda s: None)
    client = mlops.Client(sb.gateway_url, provider)
    assert client.storage.user.who_am_i().user.username == "alice"


def test_device_login_denied(sb) -> None:
    login = mlops.DeviceLogin.from_issuer(sb.token_endpoint, sb.client_id).start()
    _approve(sb, login, action="deny")
    with pytest.raises(mlops.AuthenticationError) as e:
        login.poll(sleep=lambda s: None)
    assert e.value.error == "access_denied"


def test_device_login_can_be_cancelled(sb) -> None:
    login = mlops.DeviceLogin.from_issuer(sb.issuer, sb.client_id).start()
    calls = iter([False, True])
    assert login.poll(sleep=lambda s: None, cancelled=lambda: next(calls)) is None


def test_short_lived_tokens_are_refreshed_once_per_window_not_per_call(tmp_path) -> None:
    # 2-second tokens and the default 5-second band: a fixed band would refresh on every call
    # (16 x 200 = 3,200 grants). Scaled to half the lifetime, it is about one per second.
    with Sandbox(db=str(tmp_path / "storm.sqlite3"), data="empty", token_ttl=2,
                 revoke_refresh_token_on_use=True) as sandbox:
        provider = mlops.TokenProvider(sandbox.refresh_token("alice"), sandbox.client_id, sandbox.token_endpoint)
        client = mlops.Client(sandbox.gateway_url, provider)
        barrier = threading.Barrier(16)
        failures: list[BaseException] = []

        def worker() -> None:
            barrier.wait()
            for _ in range(200):
                try:
                    client.storage.user.who_am_i()
                except BaseException as e:  # reported below, with the others
                    failures.append(e)

        started = time.monotonic()
        threads = [threading.Thread(target=worker) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.monotonic() - started
        grants = sandbox.idp.grants["refresh_token"]
    assert failures == []
    assert grants == provider.refresh_count
    # One per window of half a token's life (1 s), plus the first.
    assert grants <= took / 1.0 + 2, (grants, took)


def test_threads_refused_the_same_token_cause_one_refresh(tmp_path) -> None:
    # A negative band hands out tokens past their expiry, so every thread sends an expired
    # token and is refused at once: one of them refreshes, the others use its new token.
    with Sandbox(db=str(tmp_path / "401.sqlite3"), data="empty", token_ttl=3) as sandbox:
        provider = mlops.TokenProvider(sandbox.refresh_token("alice"), sandbox.client_id, sandbox.token_endpoint,
                                       expiry_threshold_band=-30)
        client = mlops.Client(sandbox.gateway_url, provider)
        client.storage.user.who_am_i()
        expired = provider()
        while True:  # until the gateway refuses it (exp is in whole seconds)
            try:
                sandbox.idp.verify_access_token(expired)
            except InvalidToken:
                break
            time.sleep(0.1)
        before = sandbox.idp.grants["refresh_token"]
        barrier = threading.Barrier(16)
        names: list[str] = []

        def worker() -> None:
            barrier.wait()
            names.append(client.storage.user.who_am_i().user.username)

        threads = [threading.Thread(target=worker) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert names == ["alice"] * 16
        assert sandbox.idp.grants["refresh_token"] - before == 1
