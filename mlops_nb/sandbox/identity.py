"""The sandbox's OpenID Connect identity provider, laid out like a Keycloak realm.

Mount :meth:`IdentityProvider.routes` at :attr:`IdentityProvider.mount_path` in a Starlette
app, then call :meth:`IdentityProvider.set_base_url` once the server knows its address::

    {issuer} = {base_url}/auth/realms/{realm}
    GET  {issuer}/.well-known/openid-configuration     discovery document
    GET  {issuer}/protocol/openid-connect/certs        JWKS
    POST {issuer}/protocol/openid-connect/token        refresh_token and device_code grants
    POST {issuer}/protocol/openid-connect/auth/device  device authorization (RFC 8628)
    GET  {issuer}/device[?user_code=...]               verification page
    POST {issuer}/device                               approve or deny a user code

State lives in the SQLite file given to the constructor, in tables prefixed ``idp_``; the
signing key, the accounts and the clients are created once, so tokens survive a restart.

DEMO ONLY: the seeded accounts ``alice`` and ``bob`` have their username as password, and
the confidential client's secret is stored in clear so the sandbox can print it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import os
import re
import secrets
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple
from urllib.parse import parse_qs, quote

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

__all__ = [
    "AUDIENCE",
    "CONFIDENTIAL_CLIENT_ID",
    "DEVICE_CODE_GRANT_TYPE",
    "PUBLIC_CLIENT_ID",
    "Account",
    "IdentityProvider",
    "InvalidToken",
]

AUDIENCE = "mlops-gateway"
PUBLIC_CLIENT_ID = "mlops-nb"
CONFIDENTIAL_CLIENT_ID = "mlops-nb-confidential"
REFRESH_TOKEN_GRANT_TYPE = "refresh_token"
DEVICE_CODE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
# Keycloak answers "profile email" when a client asks for nothing; an ID token only with "openid".
DEFAULT_SCOPE = "profile email"

_DEMO_ACCOUNTS = (("alice", "alice@example.com"), ("bob", "bob@example.com"))
# RFC 8628 6.1: consonants only, so a user code never spells a word and is easy to read aloud.
_USER_CODE_ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"
_USER_CODE_LENGTH = 8
# RFC 8628 3.5: each slow_down adds five seconds to the polling interval.
_SLOW_DOWN_STEP = 5
# Expired device codes linger a while so a late poll hears expired_token, not an unknown code.
_DEVICE_CODE_GRACE = 3600
_PBKDF2_ITERATIONS = 100_000
_MAX_FORM_BYTES = 64 * 1024
_REALM_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS idp_signing_keys (
    kid TEXT PRIMARY KEY,
    private_key_pem TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS idp_accounts (
    username TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    sub TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS idp_clients (
    client_id TEXT PRIMARY KEY,
    secret TEXT,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS idp_device_codes (
    device_code TEXT PRIMARY KEY,
    user_code TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    expires_at REAL NOT NULL,
    poll_interval INTEGER NOT NULL,
    last_polled_at REAL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied')),
    username TEXT
);
CREATE TABLE IF NOT EXISTS idp_revoked_refresh_tokens (
    jti TEXT PRIMARY KEY,
    expires_at REAL NOT NULL
);
"""


class InvalidToken(Exception):
    """An access token the gateway must refuse; ``reason`` is short and never holds the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Account(NamedTuple):
    username: str
    email: str
    sub: str


class _OAuthError(Exception):
    """An RFC 6749 section 5.2 error, turned into a JSON response at the endpoint's edge."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status

    def response(self) -> JSONResponse:
        return _no_store_json({"error": self.error, "error_description": self.description}, self.status)


class _FormError(Exception):
    pass


# What a user can do about each way a refresh token fails; none of them may quote the token.
_REFRESH_TOKEN_PROBLEMS = {
    "expired": "The refresh token has expired. Sign in again to get a new one.",
    "bad signature": "The refresh token was not issued by this identity provider (its signature does not match).",
    "not yet valid": "The refresh token is not valid yet; check the clock of this machine.",
    "malformed": "The refresh token is not a well-formed token; copy it again in full.",
}


class IdentityProvider:
    """An OpenID Connect provider for the sandbox: accounts, clients, keys and token endpoints."""

    def __init__(
        self,
        db_path: str | os.PathLike[str],
        realm: str = "mlops",
        *,
        access_token_ttl: int = 300,
        refresh_token_ttl: int = 30 * 24 * 3600,
        revoke_refresh_token_on_use: bool = False,
        device_code_ttl: int = 600,
        device_poll_interval: int = 5,
    ) -> None:
        if not _REALM_PATTERN.fullmatch(realm):
            raise ValueError(f"realm {realm!r} must be letters, digits, '.', '_' or '-'")
        if min(access_token_ttl, refresh_token_ttl, device_code_ttl) <= 0 or device_poll_interval < 0:
            raise ValueError(
                "token and device code lifetimes must be positive, the poll interval not negative"
            )
        self.realm = realm
        self.access_token_ttl = access_token_ttl
        self.refresh_token_ttl = refresh_token_ttl
        self.revoke_refresh_token_on_use = revoke_refresh_token_on_use
        self.device_code_ttl = device_code_ttl
        self.device_poll_interval = device_poll_interval
        # Tokens issued, by grant type: tests and benchmarks count refreshes here.
        self.grants: Counter[str] = Counter()
        self._base_url: str | None = None
        # One connection for every thread: uvicorn's loop and the sandbox's own threads both call
        # in, and ":memory:" would otherwise give each connection a database of its own.
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            os.fspath(db_path), timeout=10, isolation_level=None, check_same_thread=False
        )
        with self._transaction() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
        self._seed()
        self._signing_kid, self._signing_key, self._public_keys = self._load_keys()

    # -- addresses ---------------------------------------------------------------------------

    @property
    def mount_path(self) -> str:
        return f"/auth/realms/{self.realm}"

    def set_base_url(self, base_url: str) -> None:
        """Set where the server listens, e.g. ``http://127.0.0.1:54321``; known only after binding."""
        base_url = base_url.rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base URL must start with http:// or https://, not {base_url!r}")
        self._base_url = base_url

    @property
    def issuer(self) -> str:
        if self._base_url is None:
            raise RuntimeError(
                "the identity provider has no base URL yet: call set_base_url() after the server binds"
            )
        return f"{self._base_url}{self.mount_path}"

    @property
    def token_endpoint(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/token"

    @property
    def device_authorization_endpoint(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/auth/device"

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/protocol/openid-connect/certs"

    @property
    def verification_uri(self) -> str:
        return f"{self.issuer}/device"

    @property
    def default_client_id(self) -> str:
        return PUBLIC_CLIENT_ID

    # -- accounts and clients ----------------------------------------------------------------

    def accounts(self) -> list[Account]:
        with self._lock:
            rows = self._db.execute(
                "SELECT username, email, sub FROM idp_accounts ORDER BY username"
            ).fetchall()
        return [Account(*row) for row in rows]

    def add_account(self, username: str, email: str, password: str) -> str:
        """Create an account and return its ``sub``; raises ValueError if the username is taken."""
        if not username:
            raise ValueError("username must not be empty")
        sub = str(uuid.uuid4())
        try:
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO idp_accounts (username, email, sub, password_hash, created_at) VALUES (?, ?, ?, ?, ?)",
                    (username, email, sub, _hash_password(password), time.time()),
                )
        except sqlite3.IntegrityError:
            raise ValueError(f"an account named {username!r} already exists") from None
        return sub

    def add_client(self, client_id: str, secret: str | None = None) -> None:
        """Register a client: public without a secret, confidential with one."""
        if not client_id:
            raise ValueError("client_id must not be empty")
        try:
            with self._transaction() as db:
                db.execute(
                    "INSERT INTO idp_clients (client_id, secret, created_at) VALUES (?, ?, ?)",
                    (client_id, secret, time.time()),
                )
        except sqlite3.IntegrityError:
            raise ValueError(f"a client named {client_id!r} already exists") from None

    def client_secret(self, client_id: str) -> str | None:
        """The secret of a confidential client, None for a public one."""
        with self._lock:
            row = self._db.execute(
                "SELECT secret FROM idp_clients WHERE client_id = ?", (client_id,)
            ).fetchone()
        if row is None:
            raise ValueError(f"unknown client {client_id!r}")
        return row[0]

    # -- tokens --------------------------------------------------------------------------------

    def issue_access_token(self, username: str, client_id: str | None = None) -> str:
        account, client_id = self._account_and_client(username, client_id)
        return self._access_token(account, client_id, DEFAULT_SCOPE)

    def issue_refresh_token(self, username: str, client_id: str | None = None) -> str:
        account, client_id = self._account_and_client(username, client_id)
        return self._refresh_token(account, client_id, DEFAULT_SCOPE)

    def verify_access_token(self, token: str) -> dict[str, Any]:
        """The claims of a valid access token for the gateway; raises InvalidToken otherwise."""
        claims = self._decode(token)
        if claims.get("typ") != "Bearer":
            raise InvalidToken("not an access token")
        audience = claims.get("aud")
        audiences = (
            [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
        )
        if AUDIENCE not in audiences:
            raise InvalidToken("wrong audience")
        if claims.get("iss") != self.issuer:
            raise InvalidToken("wrong issuer")
        return claims

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- HTTP ------------------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """Routes relative to :attr:`mount_path`."""
        return [
            Route("/.well-known/openid-configuration", self._discovery, methods=["GET"]),
            Route("/protocol/openid-connect/certs", self._certs, methods=["GET"]),
            Route("/protocol/openid-connect/token", self._token, methods=["POST"]),
            Route("/protocol/openid-connect/auth/device", self._device_authorization, methods=["POST"]),
            Route("/device", self._verification_page, methods=["GET"]),
            Route("/device", self._verification_submit, methods=["POST"]),
        ]

    async def _discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "token_endpoint": self.token_endpoint,
                "device_authorization_endpoint": self.device_authorization_endpoint,
                "jwks_uri": self.jwks_uri,
                "grant_types_supported": [REFRESH_TOKEN_GRANT_TYPE, DEVICE_CODE_GRANT_TYPE],
                "response_types_supported": [],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["none", "client_secret_post"],
                "scopes_supported": ["openid", "profile", "email"],
                "claims_supported": ["iss", "sub", "aud", "azp", "exp", "iat", "preferred_username", "email"],
            }
        )

    async def _certs(self, request: Request) -> Response:
        keys = [
            {**RSAAlgorithm.to_jwk(public_key, as_dict=True), "kid": kid, "use": "sig", "alg": "RS256"}
            for kid, public_key in self._public_keys.items()
        ]
        return JSONResponse({"keys": keys})

    # The handlers read their form on the event loop and do the rest (SQLite, PBKDF2 of a password)
    # in a worker thread: done on the loop, it would stall every other gateway and scoring request.

    async def _token(self, request: Request) -> Response:
        try:
            form = await _read_oauth_form(request)
        except _OAuthError as error:
            return error.response()
        return await run_in_threadpool(self._token_answer, form)

    def _token_answer(self, form: dict[str, str]) -> Response:
        try:
            grant_type = _required(form, "grant_type")
            if grant_type not in (REFRESH_TOKEN_GRANT_TYPE, DEVICE_CODE_GRANT_TYPE):
                raise _OAuthError(
                    "unsupported_grant_type",
                    f"This grant type is not supported; use {REFRESH_TOKEN_GRANT_TYPE} or {DEVICE_CODE_GRANT_TYPE}.",
                )
            client_id = self._authenticate_client(form)
            if grant_type == REFRESH_TOKEN_GRANT_TYPE:
                body = self._refresh_grant(client_id, _required(form, "refresh_token"))
            else:
                body = self._device_code_grant(client_id, _required(form, "device_code"))
        except _OAuthError as error:
            return error.response()
        self.grants[grant_type] += 1
        return _no_store_json(body)

    async def _device_authorization(self, request: Request) -> Response:
        try:
            form = await _read_oauth_form(request)
        except _OAuthError as error:
            return error.response()
        return await run_in_threadpool(self._device_authorization_answer, form)

    def _device_authorization_answer(self, form: dict[str, str]) -> Response:
        try:
            client_id = self._authenticate_client(form)
        except _OAuthError as error:
            return error.response()
        device_code = secrets.token_urlsafe(32)
        now = time.time()
        with self._transaction() as db:
            db.execute("DELETE FROM idp_device_codes WHERE expires_at < ?", (now - _DEVICE_CODE_GRACE,))
            # A clash among 20**8 codes is rare; a fresh draw resolves it without a visible retry.
            while True:
                user_code = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(_USER_CODE_LENGTH))
                try:
                    db.execute(
                        "INSERT INTO idp_device_codes (device_code, user_code, client_id, scope, expires_at,"
                        " poll_interval, status) VALUES (?, ?, ?, ?, ?, ?, 'pending')",
                        (
                            device_code,
                            user_code,
                            client_id,
                            form.get("scope", DEFAULT_SCOPE),
                            now + self.device_code_ttl,
                            self.device_poll_interval,
                        ),
                    )
                    break
                except sqlite3.IntegrityError:
                    continue
        shown_code = _format_user_code(user_code)
        return _no_store_json(
            {
                "device_code": device_code,
                "user_code": shown_code,
                "verification_uri": self.verification_uri,
                "verification_uri_complete": f"{self.verification_uri}?user_code={quote(shown_code)}",
                "expires_in": self.device_code_ttl,
                "interval": self.device_poll_interval,
            }
        )

    async def _verification_page(self, request: Request) -> Response:
        return _verification_html(user_code=request.query_params.get("user_code", ""))

    async def _verification_submit(self, request: Request) -> Response:
        try:
            form = await _read_form(request)
        except _FormError as error:
            return _verification_html(result=str(error), ok=False, status=400)
        return await run_in_threadpool(self._verification_answer, form)

    def _verification_answer(self, form: dict[str, str]) -> Response:
        user_code = form.get("user_code", "")
        username = form.get("username", "")
        normalized = _normalize_user_code(user_code)
        unknown_code = _verification_html(
            user_code=user_code,
            username=username,
            result="Unknown or expired code. Start the sign-in again in your notebook to get a new code.",
            ok=False,
            status=400,
        )
        # The code is checked before the password, so a stale code is reported as such, not as a bad login.
        with self._lock:
            pending = self._db.execute(
                "SELECT 1 FROM idp_device_codes WHERE user_code = ? AND status = 'pending' AND expires_at > ?",
                (normalized, time.time()),
            ).fetchone()
        if pending is None:
            return unknown_code
        # Denying needs no password: whoever holds the code may refuse it, and that only stops a sign-in.
        if form.get("action") == "deny":
            if not self._decide(normalized, "denied", None):
                return unknown_code
            return _verification_html(result="Request denied. The device was not signed in.", ok=True)
        if not self._password_matches(username, form.get("password", "")):
            return _verification_html(
                user_code=user_code,
                username=username,
                result="Wrong username or password.",
                ok=False,
                status=400,
            )
        if not self._decide(normalized, "approved", username):
            return unknown_code
        return _verification_html(result="Device approved, you can return to your notebook.", ok=True)

    # -- grants ----------------------------------------------------------------------------------

    def _authenticate_client(self, form: dict[str, str]) -> str:
        client_id = _required(form, "client_id")
        try:
            expected = self.client_secret(client_id)
        except ValueError:
            raise _OAuthError(
                "invalid_client", "No client is registered under this client_id.", 401
            ) from None
        if expected is not None:
            given = form.get("client_secret")
            if given is None:
                raise _OAuthError(
                    "invalid_client", "This client is confidential: send its client_secret as well.", 401
                )
            if not hmac.compare_digest(given.encode(), expected.encode()):
                raise _OAuthError("invalid_client", "The client_secret is wrong for this client.", 401)
        return client_id

    def _refresh_grant(self, client_id: str, refresh_token: str) -> dict[str, Any]:
        try:
            claims = self._decode(refresh_token)
        except InvalidToken as error:
            raise _OAuthError("invalid_grant", _REFRESH_TOKEN_PROBLEMS[error.reason]) from None
        if claims.get("typ") != "Refresh":
            raise _OAuthError(
                "invalid_grant", "This is not a refresh token; send the refresh_token you were given."
            )
        # Only the realm is compared, not host and port: the sandbox may come back on another port,
        # and the signature already proves this provider issued the token.
        if not str(claims.get("iss", "")).endswith(self.mount_path):
            raise _OAuthError(
                "invalid_grant", f"The refresh token belongs to another realm than {self.realm!r}."
            )
        if claims.get("azp") != client_id:
            raise _OAuthError(
                "invalid_grant", "The refresh token was issued to another client; use that client_id."
            )
        if self.revoke_refresh_token_on_use:
            with self._transaction() as db:
                db.execute("DELETE FROM idp_revoked_refresh_tokens WHERE expires_at < ?", (time.time(),))
                inserted = db.execute(
                    "INSERT OR IGNORE INTO idp_revoked_refresh_tokens (jti, expires_at) VALUES (?, ?)",
                    (claims["jti"], claims["exp"]),
                ).rowcount
            if not inserted:
                raise _OAuthError(
                    "invalid_grant",
                    "The refresh token was already used and is revoked; use the newest refresh token or sign in again.",
                )
        account = self._account_by("sub", claims["sub"])
        if account is None:
            raise _OAuthError(
                "invalid_grant", "The account this refresh token was issued to no longer exists."
            )
        return self._token_response(account, client_id, str(claims.get("scope", DEFAULT_SCOPE)))

    def _device_code_grant(self, client_id: str, device_code: str) -> dict[str, Any]:
        now = time.time()
        with self._transaction() as db:
            row = db.execute(
                "SELECT client_id, scope, expires_at, poll_interval, last_polled_at, status, username"
                " FROM idp_device_codes WHERE device_code = ?",
                (device_code,),
            ).fetchone()
            if row is None:
                raise _OAuthError(
                    "invalid_grant", "Unknown or already used device code; start the device sign-in again."
                )
            owner, scope, expires_at, interval, last_polled_at, status, username = row
            if owner != client_id:
                raise _OAuthError(
                    "invalid_grant", "The device code was issued to another client; use that client_id."
                )
            if now >= expires_at:
                raise _OAuthError(
                    "expired_token", "The device code has expired; start the device sign-in again."
                )
            if status == "denied":
                raise _OAuthError("access_denied", "The user denied this sign-in on the verification page.")
            if status == "pending":
                too_fast = last_polled_at is not None and now - last_polled_at < interval
                if too_fast:
                    interval += _SLOW_DOWN_STEP
                db.execute(
                    "UPDATE idp_device_codes SET last_polled_at = ?, poll_interval = ? WHERE device_code = ?",
                    (now, interval, device_code),
                )
            else:
                db.execute("DELETE FROM idp_device_codes WHERE device_code = ?", (device_code,))
        # Raised after the transaction commits, so the new poll time and interval are kept.
        if status == "pending":
            if too_fast:
                raise _OAuthError(
                    "slow_down", f"Polling too fast; wait at least {interval} seconds between polls."
                )
            raise _OAuthError(
                "authorization_pending", "The user has not approved this sign-in yet; keep polling."
            )
        account = self._account_by("username", username)
        if account is None:
            raise _OAuthError("invalid_grant", "The account that approved this sign-in no longer exists.")
        return self._token_response(account, client_id, scope)

    def _decide(self, user_code: str, status: str, username: str | None) -> bool:
        with self._transaction() as db:
            changed = db.execute(
                "UPDATE idp_device_codes SET status = ?, username = ?"
                " WHERE user_code = ? AND status = 'pending' AND expires_at > ?",
                (status, username, user_code, time.time()),
            ).rowcount
        return changed == 1

    def _token_response(self, account: Account, client_id: str, scope: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self._access_token(account, client_id, scope),
            "expires_in": self.access_token_ttl,
            "refresh_token": self._refresh_token(account, client_id, scope),
            "refresh_expires_in": self.refresh_token_ttl,
            "token_type": "Bearer",
            "scope": scope,
        }
        if "openid" in scope.split():
            body["id_token"] = self._sign(
                {"aud": client_id, "azp": client_id, **_profile_claims(account), "typ": "ID"},
                self.access_token_ttl,
            )
        return body

    def _access_token(self, account: Account, client_id: str, scope: str) -> str:
        claims = {
            "aud": AUDIENCE,
            "azp": client_id,
            "scope": scope,
            **_profile_claims(account),
            "typ": "Bearer",
        }
        return self._sign(claims, self.access_token_ttl)

    def _refresh_token(self, account: Account, client_id: str, scope: str) -> str:
        claims = {"azp": client_id, "scope": scope, "sub": account.sub, "typ": "Refresh"}
        return self._sign(claims, self.refresh_token_ttl)

    def _sign(self, claims: dict[str, Any], ttl: int) -> str:
        now = time.time()
        # exp is in whole seconds: rounding to the nearest keeps even a 1-second token within half a
        # second of its ttl (truncating could leave it no life at all, rounding up almost two seconds).
        payload = {
            "iss": self.issuer,
            "iat": int(now),
            "exp": int(now + ttl + 0.5),
            "jti": str(uuid.uuid4()),
            **claims,
        }
        return jwt.encode(payload, self._signing_key, algorithm="RS256", headers={"kid": self._signing_kid})

    def _decode(self, token: str) -> dict[str, Any]:
        """Signature and lifetime checks shared by every token type; the caller checks the rest."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError:
            raise InvalidToken("malformed") from None
        public_key = self._public_keys.get(kid) if isinstance(kid, str) else None
        if public_key is None:
            raise InvalidToken("bad signature")
        try:
            return jwt.decode(
                token,
                public_key,
                algorithms=["RS256"],
                options={
                    "verify_aud": False,
                    "verify_iss": False,
                    "require": ["exp", "iat", "sub", "jti", "typ"],
                },
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("expired") from None
        except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError):
            raise InvalidToken("bad signature") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("not yet valid") from None
        except jwt.InvalidTokenError:
            raise InvalidToken("malformed") from None

    # -- storage ---------------------------------------------------------------------------------

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock up front, so check-then-insert stays atomic even when
        # another process (a second sandbox on the same file) starts at the same moment.
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _seed(self) -> None:
        now = time.time()
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM idp_signing_keys").fetchone() is None:
                private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                pem = private_key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).decode()
                db.execute(
                    "INSERT INTO idp_signing_keys (kid, private_key_pem, created_at) VALUES (?, ?, ?)",
                    (_key_thumbprint(private_key.public_key()), pem, now),
                )
            for username, email in _DEMO_ACCOUNTS:
                seeded = db.execute("SELECT 1 FROM idp_accounts WHERE username = ?", (username,)).fetchone()
                # Checked first rather than INSERT OR IGNORE, so a restart does not pay for hashing.
                if seeded is None:
                    db.execute(
                        "INSERT INTO idp_accounts (username, email, sub, password_hash, created_at)"
                        " VALUES (?, ?, ?, ?, ?)",
                        (username, email, str(uuid.uuid4()), _hash_password(username), now),
                    )
            for client_id, secret in (
                (PUBLIC_CLIENT_ID, None),
                (CONFIDENTIAL_CLIENT_ID, secrets.token_urlsafe(32)),
            ):
                db.execute(
                    "INSERT OR IGNORE INTO idp_clients (client_id, secret, created_at) VALUES (?, ?, ?)",
                    (client_id, secret, now),
                )

    def _load_keys(self) -> tuple[str, rsa.RSAPrivateKey, dict[str, rsa.RSAPublicKey]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT kid, private_key_pem FROM idp_signing_keys ORDER BY created_at DESC"
            ).fetchall()
        private_keys: dict[str, rsa.RSAPrivateKey] = {}
        for kid, pem in rows:
            key = serialization.load_pem_private_key(pem.encode(), password=None)
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError(f"signing key {kid!r} in idp_signing_keys is not an RSA key")
            private_keys[kid] = key
        newest_kid = rows[0][0]
        return (
            newest_kid,
            private_keys[newest_kid],
            {kid: key.public_key() for kid, key in private_keys.items()},
        )

    def _account_by(self, column: str, value: str) -> Account | None:
        # column is one of two literals chosen in this module, never user input.
        with self._lock:
            row = self._db.execute(
                f"SELECT username, email, sub FROM idp_accounts WHERE {column} = ?", (value,)
            ).fetchone()
        return None if row is None else Account(*row)

    def _account_and_client(self, username: str, client_id: str | None) -> tuple[Account, str]:
        account = self._account_by("username", username)
        if account is None:
            raise ValueError(f"unknown account {username!r}")
        client_id = client_id or self.default_client_id
        self.client_secret(client_id)  # raises ValueError for an unknown client
        return account, client_id

    def _password_matches(self, username: str, password: str) -> bool:
        with self._lock:
            row = self._db.execute(
                "SELECT password_hash FROM idp_accounts WHERE username = ?", (username,)
            ).fetchone()
        # Hash even for an unknown username, so the response time does not tell which usernames exist.
        matches = _check_password(row[0] if row else _UNKNOWN_USER_HASH, password)
        return matches and row is not None


def _profile_claims(account: Account) -> dict[str, str]:
    return {"sub": account.sub, "preferred_username": account.username, "email": account.email}


def _key_thumbprint(public_key: rsa.RSAPublicKey) -> str:
    """RFC 7638 thumbprint: a kid derived from the key, so it never disagrees with the key it names."""
    jwk = RSAAlgorithm.to_jwk(public_key, as_dict=True)
    canonical = json.dumps(
        {name: jwk[name] for name in ("e", "kty", "n")}, separators=(",", ":"), sort_keys=True
    )
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def _hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _PBKDF2_ITERATIONS)
    return f"pbkdf2_sha256${_PBKDF2_ITERATIONS}${salt.hex()}${digest.hex()}"


def _check_password(stored: str, password: str) -> bool:
    _, iterations, salt, digest = stored.split("$")
    candidate = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), int(iterations))
    return hmac.compare_digest(candidate.hex(), digest)


# Same cost as a real check, and no password hashes to it.
_UNKNOWN_USER_HASH = f"pbkdf2_sha256${_PBKDF2_ITERATIONS}${'00' * 16}${'00' * 32}"


def _normalize_user_code(user_code: str) -> str:
    # People type codes in lower case, with or without the dash, sometimes with spaces.
    return re.sub(r"[\s-]", "", user_code).upper()


def _format_user_code(user_code: str) -> str:
    half = len(user_code) // 2
    return f"{user_code[:half]}-{user_code[half:]}"


async def _read_form(request: Request) -> dict[str, str]:
    """Parse an urlencoded body; done by hand because Starlette's form parser needs python-multipart."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise _FormError(
            "Send the parameters form-encoded (Content-Type: application/x-www-form-urlencoded)."
        )
    body = await request.body()
    if len(body) > _MAX_FORM_BYTES:
        raise _FormError("The request body is too large.")
    try:
        # Empty values are dropped: RFC 6749 3.1 treats a parameter without a value as omitted.
        fields = parse_qs(body.decode("utf-8"), strict_parsing=False, errors="strict", max_num_fields=100)
    except (UnicodeDecodeError, ValueError):
        raise _FormError("The request body is not valid form-encoded UTF-8.") from None
    repeated = sorted(name for name, values in fields.items() if len(values) > 1)
    if repeated:
        raise _FormError(f"Parameters must not be repeated: {', '.join(repeated)}.")
    return {name: values[0] for name, values in fields.items()}


async def _read_oauth_form(request: Request) -> dict[str, str]:
    try:
        return await _read_form(request)
    except _FormError as error:
        raise _OAuthError("invalid_request", str(error)) from None


def _required(form: dict[str, str], name: str) -> str:
    value = form.get(name)
    if value is None:
        raise _OAuthError("invalid_request", f"The {name} parameter is missing.")
    return value


def _no_store_json(body: dict[str, Any], status: int = 200) -> JSONResponse:
    # RFC 6749 5.1: token responses must not be cached anywhere.
    return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


_PAGE_STYLE = """
body { font-family: system-ui, sans-serif; background: #f4f5f7; color: #1d2330; margin: 0; }
main { max-width: 26rem; margin: 4rem auto; background: #fff; padding: 2rem; border-radius: 8px;
       box-shadow: 0 1px 4px rgba(0, 0, 0, .12); }
h1 { font-size: 1.3rem; margin-top: 0; }
label { display: block; margin-top: 1rem; font-weight: 600; }
input { width: 100%; box-sizing: border-box; padding: .5rem; margin-top: .25rem; font-size: 1rem; }
#user_code { font-family: ui-monospace, monospace; letter-spacing: .1em; text-transform: uppercase; }
.buttons { display: flex; gap: .75rem; margin-top: 1.5rem; }
button { flex: 1; padding: .6rem; font-size: 1rem; border-radius: 4px; border: 1px solid #8a94a6; cursor: pointer; }
#approve { background: #1f6feb; border-color: #1f6feb; color: #fff; }
.result { padding: .75rem; border-radius: 4px; }
.ok { background: #e6f4ea; color: #1e4620; }
.error { background: #fdecea; color: #611a15; }
.hint { color: #5b6474; font-size: .85rem; margin-top: 1.5rem; }
"""


def _verification_html(
    *, user_code: str = "", username: str = "", result: str | None = None, ok: bool = False, status: int = 200
) -> HTMLResponse:
    """The verification page: the form, a result, or a failed result above the form to try again."""
    parts = []
    if result is not None:
        parts.append(
            f'<p id="result" class="result {"ok" if ok else "error"}" role="status">{html.escape(result)}</p>'
        )
    if not (result is not None and ok):
        parts.append(
            f"""<form method="post" action="device">
<label for="user_code">Code shown in your notebook</label>
<input id="user_code" name="user_code" value="{html.escape(user_code)}" autocomplete="off" required>
<label for="username">Username</label>
<input id="username" name="username" value="{html.escape(username)}" autocomplete="username" required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<div class="buttons">
<button id="approve" type="submit" name="action" value="approve">Approve</button>
<button id="deny" type="submit" name="action" value="deny" formnovalidate>Deny</button>
</div>
</form>
<p class="hint">Sandbox demo accounts: alice and bob; the password is the username.</p>"""
        )
    page = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in a device - MLOps sandbox</title>
<style>{_PAGE_STYLE}</style>
</head>
<body>
<main>
<h1>Sign in a device</h1>
{"".join(parts)}
</main>
</body>
</html>
"""
    headers = {
        "Cache-Control": "no-store",
        # The URL can carry the user code: keep it out of Referer headers, and keep the page out of frames.
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    }
    return HTMLResponse(page, status_code=status, headers=headers)
