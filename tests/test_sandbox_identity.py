"""The sandbox identity provider, served by uvicorn on loopback and driven over HTTP."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from mlops_nb.sandbox.identity import (
    AUDIENCE,
    CONFIDENTIAL_CLIENT_ID,
    DEVICE_CODE_GRANT_TYPE,
    PUBLIC_CLIENT_ID,
    IdentityProvider,
    InvalidToken,
)


@dataclass
class Served:
    idp: IdentityProvider
    server: uvicorn.Server
    thread: threading.Thread

    def token(self, **form: str) -> requests.Response:
        return requests.post(self.idp.token_endpoint, data=form, timeout=5)

    def refresh(
        self, refresh_token: str, client_id: str = PUBLIC_CLIENT_ID, **extra: str
    ) -> requests.Response:
        return self.token(
            grant_type="refresh_token", client_id=client_id, refresh_token=refresh_token, **extra
        )

    def start_device(self, client_id: str = PUBLIC_CLIENT_ID, **extra: str) -> dict[str, Any]:
        response = requests.post(
            self.idp.device_authorization_endpoint, data={"client_id": client_id, **extra}, timeout=5
        )
        assert response.status_code == 200, response.text
        return response.json()

    def poll(self, device_code: str, client_id: str = PUBLIC_CLIENT_ID) -> requests.Response:
        return self.token(grant_type=DEVICE_CODE_GRANT_TYPE, client_id=client_id, device_code=device_code)

    def verify(self, **form: str) -> requests.Response:
        return requests.post(self.idp.verification_uri, data=form, timeout=5)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
        self.idp.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start a provider on a free port; several may run at once, or one after another on one file."""
    running: list[Served] = []

    def start(db_path: Path | None = None, **options: Any) -> Served:
        idp = IdentityProvider(db_path or tmp_path / "sandbox.db", **options)
        app = Starlette(routes=[Mount(idp.mount_path, routes=idp.routes())])
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 5
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        idp.set_base_url(f"http://127.0.0.1:{port}")
        served = Served(idp, server, thread)
        running.append(served)
        return served

    yield start
    # Ask every server to exit before waiting on any, so their shutdowns overlap.
    for served in running:
        served.server.should_exit = True
    for served in running:
        if served.thread.is_alive():
            served.stop()


@pytest.fixture
def sandbox(serve: Callable[..., Served]) -> Served:
    return serve(device_poll_interval=0)


def approve(sandbox: Served, user_code: str, username: str = "alice") -> None:
    response = sandbox.verify(user_code=user_code, username=username, password=username, action="approve")
    assert response.status_code == 200, response.text
    assert "Device approved, you can return to your notebook" in response.text


def tamper(token: str) -> str:
    """The token with one signature character changed; the padding bits at the end stay valid."""
    header, payload, signature = token.split(".")
    middle = len(signature) // 2
    changed = "A" if signature[middle] != "A" else "B"
    return f"{header}.{payload}.{signature[:middle]}{changed}{signature[middle + 1 :]}"


def assert_error(response: requests.Response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert body["error_description"]
    assert response.headers["Cache-Control"] == "no-store"
    return body


# -- discovery and keys --------------------------------------------------------------------------


def test_discovery_document_names_every_endpoint(sandbox: Served) -> None:
    issuer = sandbox.idp.issuer
    assert issuer.endswith("/auth/realms/mlops")
    document = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=5).json()
    assert document["issuer"] == issuer
    assert document["token_endpoint"] == f"{issuer}/protocol/openid-connect/token"
    assert document["device_authorization_endpoint"] == f"{issuer}/protocol/openid-connect/auth/device"
    assert document["jwks_uri"] == f"{issuer}/protocol/openid-connect/certs"
    assert set(document["grant_types_supported"]) == {"refresh_token", DEVICE_CODE_GRANT_TYPE}
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]


def test_access_token_verifies_against_published_jwks(sandbox: Served) -> None:
    token = sandbox.idp.issue_access_token("alice")
    jwks = requests.get(sandbox.idp.jwks_uri, timeout=5).json()
    kid = jwt.get_unverified_header(token)["kid"]
    (jwk,) = [key for key in jwks["keys"] if key["kid"] == kid]
    assert (jwk["kty"], jwk["alg"], jwk["use"]) == ("RSA", "RS256", "sig")
    assert "d" not in jwk, "the JWKS must not publish the private key"
    claims = jwt.decode(
        token, jwt.PyJWK(jwk).key, algorithms=["RS256"], audience=AUDIENCE, issuer=sandbox.idp.issuer
    )
    alice = next(account for account in sandbox.idp.accounts() if account.username == "alice")
    assert claims["sub"] == alice.sub
    assert claims["preferred_username"] == "alice"
    assert claims["email"] == "alice@example.com"
    assert claims["azp"] == PUBLIC_CLIENT_ID
    assert claims["typ"] == "Bearer"
    assert claims["exp"] - claims["iat"] >= 300
    assert claims["jti"]
    assert sandbox.idp.verify_access_token(token)["sub"] == alice.sub


def test_seeded_accounts_and_clients(sandbox: Served) -> None:
    accounts = {account.username: account for account in sandbox.idp.accounts()}
    assert {"alice", "bob"} <= accounts.keys()
    assert accounts["bob"].email == "bob@example.com"
    assert accounts["alice"].sub != accounts["bob"].sub
    assert sandbox.idp.default_client_id == PUBLIC_CLIENT_ID
    assert sandbox.idp.client_secret(PUBLIC_CLIENT_ID) is None
    assert sandbox.idp.client_secret(CONFIDENTIAL_CLIENT_ID)
    with pytest.raises(ValueError):
        sandbox.idp.add_account("alice", "other@example.com", "x")


def test_tables_are_prefixed(sandbox: Served, tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "sandbox.db") as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables and all(name.startswith("idp_") for name in tables)


# -- refresh grant -------------------------------------------------------------------------------


def test_refresh_rotates_and_old_token_stays_valid_by_default(sandbox: Served) -> None:
    first = sandbox.idp.issue_refresh_token("bob")
    response = sandbox.refresh(first)
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 300
    assert body["refresh_expires_in"] == 30 * 24 * 3600
    assert body["scope"]
    assert body["refresh_token"] != first
    assert sandbox.idp.verify_access_token(body["access_token"])["preferred_username"] == "bob"

    second = sandbox.refresh(body["refresh_token"])
    assert second.status_code == 200
    assert second.json()["refresh_token"] not in (first, body["refresh_token"])
    assert sandbox.refresh(first).status_code == 200


def test_refresh_token_is_revoked_on_use_when_asked(serve: Callable[..., Served]) -> None:
    sandbox = serve(revoke_refresh_token_on_use=True)
    first = sandbox.idp.issue_refresh_token("alice")
    rotated = sandbox.refresh(first)
    assert rotated.status_code == 200
    body = assert_error(sandbox.refresh(first), 400, "invalid_grant")
    assert "already used" in body["error_description"]
    assert sandbox.refresh(rotated.json()["refresh_token"]).status_code == 200


def test_refresh_token_bound_to_its_client(sandbox: Served) -> None:
    token = sandbox.idp.issue_refresh_token("alice", client_id=CONFIDENTIAL_CLIENT_ID)
    assert_error(sandbox.refresh(token), 400, "invalid_grant")
    secret = sandbox.idp.client_secret(CONFIDENTIAL_CLIENT_ID)
    assert secret is not None
    response = sandbox.refresh(token, client_id=CONFIDENTIAL_CLIENT_ID, client_secret=secret)
    assert response.status_code == 200
    assert sandbox.idp.verify_access_token(response.json()["access_token"])["azp"] == CONFIDENTIAL_CLIENT_ID


def test_confidential_client_secret(sandbox: Served) -> None:
    token = sandbox.idp.issue_refresh_token("alice", client_id=CONFIDENTIAL_CLIENT_ID)
    secret = sandbox.idp.client_secret(CONFIDENTIAL_CLIENT_ID)
    assert secret is not None
    assert sandbox.refresh(token, client_id=CONFIDENTIAL_CLIENT_ID, client_secret=secret).status_code == 200
    assert_error(
        sandbox.refresh(token, client_id=CONFIDENTIAL_CLIENT_ID, client_secret=secret + "x"),
        401,
        "invalid_client",
    )
    body = assert_error(sandbox.refresh(token, client_id=CONFIDENTIAL_CLIENT_ID), 401, "invalid_client")
    assert "client_secret" in body["error_description"]


def test_added_client_and_account(sandbox: Served) -> None:
    sandbox.idp.add_client("ci-bot", secret="s3cret")
    sub = sandbox.idp.add_account("carol", "carol@example.com", "pw")
    token = sandbox.idp.issue_refresh_token("carol", client_id="ci-bot")
    response = sandbox.refresh(token, client_id="ci-bot", client_secret="s3cret")
    assert response.status_code == 200
    assert sandbox.idp.verify_access_token(response.json()["access_token"])["sub"] == sub


def test_token_endpoint_errors(sandbox: Served) -> None:
    token = sandbox.idp.issue_refresh_token("alice")
    assert_error(sandbox.token(client_id=PUBLIC_CLIENT_ID, refresh_token=token), 400, "invalid_request")
    assert_error(sandbox.token(grant_type="refresh_token", refresh_token=token), 400, "invalid_request")
    assert_error(
        sandbox.token(grant_type="refresh_token", client_id=PUBLIC_CLIENT_ID), 400, "invalid_request"
    )
    assert_error(
        sandbox.token(grant_type=DEVICE_CODE_GRANT_TYPE, client_id=PUBLIC_CLIENT_ID), 400, "invalid_request"
    )
    assert_error(
        sandbox.token(grant_type="password", username="alice", password="alice"),
        400,
        "unsupported_grant_type",
    )
    assert_error(sandbox.refresh(token, client_id="nobody"), 401, "invalid_client")
    assert_error(sandbox.refresh("not-a-jwt"), 400, "invalid_grant")
    # A repeated parameter is ambiguous (RFC 6749 3.2), and JSON is not the token endpoint's format.
    repeated = (
        f"grant_type=refresh_token&client_id={PUBLIC_CLIENT_ID}&refresh_token={token}&refresh_token={token}"
    )
    assert_error(
        requests.post(
            sandbox.idp.token_endpoint,
            data=repeated,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=5,
        ),
        400,
        "invalid_request",
    )
    assert_error(
        requests.post(sandbox.idp.token_endpoint, json={"grant_type": "refresh_token"}, timeout=5),
        400,
        "invalid_request",
    )


def test_invalid_grant_for_every_kind_of_bad_refresh_token(
    sandbox: Served, serve: Callable[..., Served], tmp_path: Path
) -> None:
    sandbox.idp.add_account("dave", "dave@example.com", "dave")
    orphan = sandbox.idp.issue_refresh_token("dave")
    with sqlite3.connect(tmp_path / "sandbox.db") as db:
        db.execute("DELETE FROM idp_accounts WHERE username = 'dave'")
    cases = {
        "tampered": tamper(sandbox.idp.issue_refresh_token("alice")),
        "foreign": serve(tmp_path / "other.db").idp.issue_refresh_token("alice"),
        "access": sandbox.idp.issue_access_token("alice"),
        "orphan": orphan,
    }
    descriptions = {
        name: assert_error(sandbox.refresh(token), 400, "invalid_grant")["error_description"]
        for name, token in cases.items()
    }
    assert "signature" in descriptions["tampered"] and "signature" in descriptions["foreign"]
    assert "not a refresh token" in descriptions["access"]
    assert "no longer exists" in descriptions["orphan"]


def test_no_error_body_contains_the_submitted_token(serve: Callable[..., Served]) -> None:
    sandbox = serve(revoke_refresh_token_on_use=True)
    token = sandbox.idp.issue_refresh_token("alice", client_id=CONFIDENTIAL_CLIENT_ID)
    header, payload, signature = token.split(".")
    secret = sandbox.idp.client_secret(CONFIDENTIAL_CLIENT_ID)
    assert secret is not None
    assert sandbox.refresh(token, client_id=CONFIDENTIAL_CLIENT_ID, client_secret=secret).status_code == 200
    failures = [
        sandbox.refresh(token, client_id=CONFIDENTIAL_CLIENT_ID, client_secret=secret),  # revoked
        sandbox.refresh(token, client_id=CONFIDENTIAL_CLIENT_ID, client_secret="wrong"),
        sandbox.refresh(token),  # another client
        sandbox.refresh(tamper(token)),
        sandbox.refresh(f"{header}.{payload}"),
        sandbox.token(grant_type=token, client_id=PUBLIC_CLIENT_ID),
        sandbox.token(grant_type="refresh_token", client_id=token, refresh_token=token),
        sandbox.poll(token),
    ]
    for response in failures:
        assert response.status_code in (400, 401), response.text
        for secret_part in (token, payload, signature):
            assert secret_part not in response.text


# -- access tokens ---------------------------------------------------------------------------------


def test_expired_tokens_are_rejected(serve: Callable[..., Served]) -> None:
    sandbox = serve(access_token_ttl=1, refresh_token_ttl=1)
    access_token = sandbox.idp.issue_access_token("alice")
    refresh_token = sandbox.idp.issue_refresh_token("alice")
    assert sandbox.idp.verify_access_token(access_token)["preferred_username"] == "alice"
    time.sleep(1.5)
    with pytest.raises(InvalidToken) as caught:
        sandbox.idp.verify_access_token(access_token)
    assert caught.value.reason == "expired"
    assert access_token not in str(caught.value)
    body = assert_error(sandbox.refresh(refresh_token), 400, "invalid_grant")
    assert "expired" in body["error_description"]


def test_verify_access_token_reasons(sandbox: Served, serve: Callable[..., Served], tmp_path: Path) -> None:
    good = sandbox.idp.issue_access_token("alice")
    header, payload, signature = good.split(".")
    claims = jwt.decode(good, options={"verify_signature": False})
    # Signing with the sandbox's own stored key is the only way to mint a validly signed bad token.
    with sqlite3.connect(tmp_path / "sandbox.db") as db:
        kid, pem = db.execute("SELECT kid, private_key_pem FROM idp_signing_keys").fetchone()
    wrong_audience = jwt.encode(
        {**claims, "aud": "someone-else"}, pem, algorithm="RS256", headers={"kid": kid}
    )
    elsewhere = IdentityProvider(tmp_path / "sandbox.db")
    elsewhere.set_base_url("http://elsewhere.example")
    cases = [
        ("malformed", "garbage"),
        ("malformed", f"{header}.{payload}"),
        ("bad signature", tamper(good)),
        ("bad signature", serve(tmp_path / "other.db").idp.issue_access_token("alice")),
        ("not an access token", sandbox.idp.issue_refresh_token("alice")),
        ("wrong audience", wrong_audience),
        ("wrong issuer", elsewhere.issue_access_token("alice")),
    ]
    elsewhere.close()
    for reason, token in cases:
        with pytest.raises(InvalidToken) as caught:
            sandbox.idp.verify_access_token(token)
        assert caught.value.reason == reason
        assert token not in str(caught.value)


# -- device authorization grant ------------------------------------------------------------------


def test_device_grant_happy_path(sandbox: Served) -> None:
    started = sandbox.start_device(scope="openid profile email")
    assert started["verification_uri"] == f"{sandbox.idp.issuer}/device"
    assert started["verification_uri_complete"].startswith(f"{sandbox.idp.issuer}/device?user_code=")
    assert started["expires_in"] == 600
    assert started["interval"] == 0
    user_code = started["user_code"]
    assert len(user_code) == 9 and user_code[4] == "-" and user_code.replace("-", "").isupper()

    assert_error(sandbox.poll(started["device_code"]), 400, "authorization_pending")
    page = requests.get(started["verification_uri_complete"], timeout=5)
    assert page.status_code == 200
    assert f'value="{user_code}"' in page.text
    for element in ('id="user_code"', 'id="username"', 'id="password"', 'id="approve"', 'id="deny"'):
        assert element in page.text
    assert "<script" not in page.text and "http" not in page.text.split("<body>")[1]

    # Codes are typed by people: lower case and a missing dash still match.
    approve(sandbox, user_code.replace("-", "").lower())
    response = sandbox.poll(started["device_code"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == "openid profile email"
    claims = sandbox.idp.verify_access_token(body["access_token"])
    assert claims["preferred_username"] == "alice"
    id_claims = jwt.decode(body["id_token"], options={"verify_signature": False})
    assert (id_claims["aud"], id_claims["email"]) == (PUBLIC_CLIENT_ID, "alice@example.com")
    assert sandbox.refresh(body["refresh_token"]).status_code == 200

    # The device code is consumed by the one successful exchange.
    assert_error(sandbox.poll(started["device_code"]), 400, "invalid_grant")


def test_device_grant_denied(sandbox: Served) -> None:
    started = sandbox.start_device()
    response = sandbox.verify(user_code=started["user_code"], action="deny")
    assert response.status_code == 200
    assert 'id="result"' in response.text and "denied" in response.text
    assert_error(sandbox.poll(started["device_code"]), 400, "access_denied")
    # A decided code cannot be decided again.
    again = sandbox.verify(
        user_code=started["user_code"], username="alice", password="alice", action="approve"
    )
    assert again.status_code == 400 and "Unknown or expired code" in again.text


def test_device_verification_rejects_wrong_password_and_unknown_code(sandbox: Served) -> None:
    started = sandbox.start_device()
    wrong = sandbox.verify(user_code=started["user_code"], username="alice", password="bob", action="approve")
    assert wrong.status_code == 400
    assert "Wrong username or password" in wrong.text
    assert f'value="{started["user_code"]}"' in wrong.text, "the form comes back filled in to try again"
    nobody = sandbox.verify(
        user_code=started["user_code"], username="nobody", password="nobody", action="approve"
    )
    assert "Wrong username or password" in nobody.text
    assert_error(sandbox.poll(started["device_code"]), 400, "authorization_pending")
    unknown = sandbox.verify(user_code="BCDF-GHJK", username="alice", password="alice", action="approve")
    assert unknown.status_code == 400 and "Unknown or expired code" in unknown.text


def test_device_grant_slow_down_raises_interval(serve: Callable[..., Served]) -> None:
    sandbox = serve(device_poll_interval=1)
    started = sandbox.start_device()
    assert started["interval"] == 1
    assert_error(sandbox.poll(started["device_code"]), 400, "authorization_pending")
    body = assert_error(sandbox.poll(started["device_code"]), 400, "slow_down")
    assert "6 seconds" in body["error_description"]


def test_device_code_expires(serve: Callable[..., Served]) -> None:
    sandbox = serve(device_code_ttl=1, device_poll_interval=0)
    started = sandbox.start_device()
    assert started["expires_in"] == 1
    time.sleep(1.2)
    assert_error(sandbox.poll(started["device_code"]), 400, "expired_token")
    late = sandbox.verify(
        user_code=started["user_code"], username="alice", password="alice", action="approve"
    )
    assert "Unknown or expired code" in late.text


def test_device_code_bound_to_its_client(sandbox: Served) -> None:
    secret = sandbox.idp.client_secret(CONFIDENTIAL_CLIENT_ID)
    assert secret is not None
    assert_error(
        requests.post(
            sandbox.idp.device_authorization_endpoint, data={"client_id": CONFIDENTIAL_CLIENT_ID}, timeout=5
        ),
        401,
        "invalid_client",
    )
    started = sandbox.start_device(CONFIDENTIAL_CLIENT_ID, client_secret=secret)
    approve(sandbox, started["user_code"])
    assert_error(sandbox.poll(started["device_code"]), 400, "invalid_grant")
    assert_error(sandbox.poll(started["device_code"], CONFIDENTIAL_CLIENT_ID), 401, "invalid_client")
    response = sandbox.token(
        grant_type=DEVICE_CODE_GRANT_TYPE,
        client_id=CONFIDENTIAL_CLIENT_ID,
        client_secret=secret,
        device_code=started["device_code"],
    )
    assert response.status_code == 200, response.text


def test_device_authorization_errors(sandbox: Served) -> None:
    assert_error(
        requests.post(sandbox.idp.device_authorization_endpoint, data={}, timeout=5), 400, "invalid_request"
    )
    assert_error(
        requests.post(sandbox.idp.device_authorization_endpoint, data={"client_id": "nobody"}, timeout=5),
        401,
        "invalid_client",
    )


def test_verification_page_escapes_hostile_input(sandbox: Served) -> None:
    hostile = '"><script>alert(1)</script><img src=x onerror=alert(2)>'
    page = requests.get(sandbox.idp.verification_uri, params={"user_code": hostile}, timeout=5)
    assert page.status_code == 200
    assert "<script>" not in page.text and "<img" not in page.text
    assert 'value="&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;' in page.text
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    result = sandbox.verify(user_code=hostile, username=hostile, password="x", action="approve")
    assert result.status_code == 400
    assert "<script>" not in result.text and "<img" not in result.text


# -- persistence ---------------------------------------------------------------------------------


def test_keys_accounts_and_clients_survive_a_restart(serve: Callable[..., Served], tmp_path: Path) -> None:
    db_path = tmp_path / "restart.db"
    first = serve(db_path)
    accounts = first.idp.accounts()
    secret = first.idp.client_secret(CONFIDENTIAL_CLIENT_ID)
    refresh_token = first.idp.issue_refresh_token("alice")
    keys = requests.get(first.idp.jwks_uri, timeout=5).json()
    first.stop()

    second = serve(db_path)
    assert second.idp.issuer != first.idp.issuer, "port 0 gives the restarted server another port"
    assert second.idp.accounts() == accounts
    assert second.idp.client_secret(CONFIDENTIAL_CLIENT_ID) == secret
    assert requests.get(second.idp.jwks_uri, timeout=5).json() == keys
    response = second.refresh(refresh_token)
    assert response.status_code == 200, response.text
    assert second.idp.verify_access_token(response.json()["access_token"])["sub"] == accounts[0].sub


def test_in_memory_database_is_shared_across_threads() -> None:
    idp = IdentityProvider(":memory:", access_token_ttl=60)
    idp.set_base_url("http://127.0.0.1:1/")
    assert idp.issuer == "http://127.0.0.1:1/auth/realms/mlops"
    subs: list[str] = []
    threads = [
        threading.Thread(
            target=lambda n=n: subs.append(idp.add_account(f"user{n}", f"u{n}@example.com", "pw"))
        )
        for n in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(subs)) == 4
    assert len(idp.accounts()) == 6
    assert idp.verify_access_token(idp.issue_access_token("user3"))["preferred_username"] == "user3"
    idp.close()
