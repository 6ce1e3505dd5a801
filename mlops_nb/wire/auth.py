"""OpenID Connect: the refresh-token grant (``TokenProvider``), discovery and the device grant.

Tokens live in private attributes only; no repr, log line or exception text
of this module contains one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import requests

from mlops_nb.wire.errors import AuthenticationError, ConnectionFailed
from mlops_nb.wire.transport import TLS_ADVICE, USER_AGENT, tls_verify, validate_gateway_url

__all__ = [
    "TokenProvider",
    "OpenIDConfiguration",
    "DeviceLogin",
    "discover",
    "KEYCLOAK_TOKEN_PATH",
]

log = logging.getLogger("mlops_nb.auth")

KEYCLOAK_TOKEN_PATH = "/protocol/openid-connect/token"
DEFAULT_EXPIRY_THRESHOLD = timedelta(seconds=5)

# What each RFC 6749 / RFC 8628 error means for the person holding the token.
_ADVICE = {
    "invalid_grant": "the refresh token is expired, revoked or was issued to another client; "
                     "log in again to get a new one",
    "invalid_client": "the identity provider does not accept this client ID (or its client secret); "
                      "check CLIENT_ID and the client secret",
    "unauthorized_client": "this client may not use this grant; ask your administrator",
    "unsupported_grant_type": "the identity provider does not support this grant",
    "invalid_request": "the identity provider rejected the request as malformed",
    "invalid_scope": "the requested scope is not allowed",
    "access_denied": "the sign-in was denied",
    "expired_token": "the sign-in code expired before it was approved; start again",
}


def _session(verify: bool | str, session: requests.Session | None, url: str,
             proxies: dict[str, str] | None = None) -> requests.Session:
    """A session for the identity provider. ``verify`` and ``proxies`` are kept on it and passed
    with each request, since requests lets the environment override a session's own."""
    if session is not None:
        return session
    s = requests.Session()
    s.headers["User-Agent"] = USER_AGENT
    s.verify = tls_verify(verify is not False, verify if isinstance(verify, str) else None, url)
    s.proxies = dict(proxies or {})
    return s


def _post_form(session: requests.Session, url: str, data: dict[str, str], timeout: float, what: str
               ) -> tuple[int, dict[str, Any]]:
    """POST a form to the identity provider; return (status, JSON body). Never echoes ``data``."""
    try:
        response = session.post(url, data=data, timeout=timeout, headers={"Accept": "application/json"},
                                verify=session.verify, proxies=session.proxies)
    except requests.exceptions.SSLError:
        raise ConnectionFailed(f"TLS verification failed for the identity provider at {url}; {TLS_ADVICE}") from None
    except requests.exceptions.Timeout:
        raise ConnectionFailed(f"the identity provider at {url} did not answer within {timeout} s") from None
    except requests.exceptions.RequestException as e:
        raise ConnectionFailed(
            f"could not reach the identity provider at {url} ({type(e).__name__}); check the {what} URL"
        ) from None
    try:
        body = response.json()
    except ValueError:
        body = None
    # An OAuth answer is a token, a device code or an RFC 6749 error; other JSON (a gateway's
    # RpcStatus 404, say) means the URL is something else.
    if not (isinstance(body, dict) and {"access_token", "device_code", "error"} & set(body)):
        raise AuthenticationError(
            f"{url} answered HTTP {response.status_code} with something that is not an OpenID Connect "
            f"JSON response; check that it is the {what} of your identity provider "
            f"(for Keycloak: https://HOST/auth/realms/REALM{KEYCLOAK_TOKEN_PATH})",
            error="not_oidc",
        )
    return response.status_code, body


# What to do when the identity provider gave its own reason (which replaces the guesses above).
_NEXT_STEP = {
    "invalid_grant": "if that does not help, log in again to get a new refresh token",
    "invalid_client": "check CLIENT_ID and the client secret",
}
# Descriptions that say no more than the error code does (Keycloak's for any bad refresh token).
_GENERIC_DESCRIPTIONS = {"invalid refresh token", "invalid grant", "invalid client", "invalid client credentials",
                         "invalid client or invalid client credentials", "bad request", "unauthorized"}


def _specific(description: str, code: str) -> bool:
    said = " ".join(description.lower().replace("_", " ").strip(" .").split())
    return bool(said) and said != code.replace("_", " ") and said not in _GENERIC_DESCRIPTIONS


def _oauth_error(body: dict[str, Any], status: int) -> AuthenticationError:
    code = str(body.get("error") or f"http_{status}")
    described = " ".join(str(body.get("error_description") or "").split())[:200]
    if _specific(described, code):
        # Lead with the provider's own reason: it knows why, our advice only guesses.
        sentence = described if described[-1] in ".!?" else described + "."
        step = _NEXT_STEP.get(code)
        return AuthenticationError(f"{code}: {sentence} (the identity provider's words{'; ' + step if step else ''})",
                                   error=code, description=described)
    advice = _ADVICE.get(code, "the identity provider refused to issue a token")
    detail = f" (the identity provider said: {described})" if described else ""
    return AuthenticationError(f"{code}: {advice}{detail}", error=code)


@dataclass(frozen=True)
class OpenIDConfiguration:
    """The endpoints of an OpenID Connect provider."""

    issuer: str | None
    token_endpoint: str
    device_authorization_endpoint: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


def discover(url: str, *, verify: bool | str = True, timeout: float = 30.0,
             session: requests.Session | None = None) -> OpenIDConfiguration:
    """Find the endpoints from an issuer URL (by OpenID discovery) or from a token endpoint URL.

    A Keycloak token endpoint (``.../protocol/openid-connect/token``) is accepted as
    it is; its issuer is then tried for discovery, to learn the device endpoint.
    """
    url = validate_gateway_url(url, "issuer or token endpoint")
    s = _session(verify, session, url)
    if url.endswith(KEYCLOAK_TOKEN_PATH):
        issuer = url[: -len(KEYCLOAK_TOKEN_PATH)]
        try:
            found = _discover_issuer(issuer, s, timeout)
        except (AuthenticationError, ConnectionFailed):
            return OpenIDConfiguration(issuer=None, token_endpoint=url)
        return OpenIDConfiguration(issuer=found.issuer, token_endpoint=url,
                                   device_authorization_endpoint=found.device_authorization_endpoint,
                                   raw=found.raw)
    return _discover_issuer(url, s, timeout)


def _discover_issuer(issuer: str, session: requests.Session, timeout: float) -> OpenIDConfiguration:
    well_known = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        response = session.get(well_known, timeout=timeout, headers={"Accept": "application/json"},
                               verify=session.verify, proxies=session.proxies)
    except requests.exceptions.SSLError:
        raise ConnectionFailed(f"TLS verification failed for the identity provider at {issuer}; {TLS_ADVICE}") from None
    except requests.exceptions.RequestException as e:
        raise ConnectionFailed(f"could not reach the identity provider at {issuer} ({type(e).__name__})") from None
    try:
        doc = response.json() if response.ok else None
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or "token_endpoint" not in doc:
        raise AuthenticationError(
            f"{issuer} does not look like an OpenID Connect issuer: {well_known} answered HTTP "
            f"{response.status_code} without a token_endpoint. Give the issuer "
            "(https://HOST/auth/realms/REALM) or the token endpoint itself.",
            error="not_oidc",
        )
    return OpenIDConfiguration(issuer=doc.get("issuer", issuer), token_endpoint=doc["token_endpoint"],
                               device_authorization_endpoint=doc.get("device_authorization_endpoint"), raw=doc)


@dataclass(frozen=True, repr=False)  # no repr: it holds the tokens
class _TokenState:
    """What a :class:`TokenProvider` knows at one moment. Each exchange replaces it whole, so a
    reader never pairs one response's token with another's expiry. Deciding is pure (no I/O,
    the time passed in); the HTTP call is the provider's."""

    refresh_token: str
    access_token: str | None = None
    expires_at: float = 0.0  # time.monotonic() deadline
    lifetime: float = 0.0

    def usable_token(self, threshold: float, now: float) -> str | None:
        """The access token if it need not be exchanged yet; None if it must be."""
        # A fixed band as long as the token's life would refresh on every call.
        band = min(threshold, self.lifetime / 2)
        return self.access_token if self.access_token and now < self.expires_at - band else None

    def grant(self, client_id: str, client_secret: str | None) -> dict[str, str]:
        """The token endpoint's form for exchanging the refresh token."""
        form = {"grant_type": "refresh_token", "client_id": client_id, "refresh_token": self.refresh_token}
        return {**form, "client_secret": client_secret} if client_secret else form

    def after(self, body: dict[str, Any], now: float) -> _TokenState:
        """The state a token response leads to (a rotated refresh token replaces this one)."""
        try:
            lifetime = float(body.get("expires_in", 60))
        except (TypeError, ValueError):
            lifetime = 60.0
        return _TokenState(refresh_token=str(body.get("refresh_token") or self.refresh_token),
                           access_token=str(body["access_token"]), expires_at=now + lifetime,
                           lifetime=max(lifetime, 0.0))


class TokenProvider:
    """Keeps a fresh access token from a refresh token (OAuth 2.0 refresh-token grant).

    Call it to get an access token: it exchanges the refresh token when there is
    no access token yet or the current one expires within ``expiry_threshold_band``,
    and keeps the newest refresh token when the provider rotates it. The band never
    exceeds half a token's lifetime, so however short-lived the tokens, each is used
    for half its life at least: one exchange per token window. Many threads calling at
    once, or refused the same token by the gateway at once, cause one exchange.

    ``ca_bundle`` (a PEM file) is trusted for the token endpoint; a client given one
    shares it with a provider that has none. ``proxies`` works as the client's does.
    """

    def __init__(
        self,
        refresh_token: str,
        client_id: str,
        token_endpoint_url: str,
        client_secret: str | None = None,
        *,
        expiry_threshold_band: timedelta | float = DEFAULT_EXPIRY_THRESHOLD,
        verify: bool = True,
        ca_bundle: str | None = None,
        timeout: float = 30.0,
        session: requests.Session | None = None,
        proxies: dict[str, str] | None = None,
    ) -> None:
        if not isinstance(refresh_token, str) or not refresh_token.strip():
            raise ValueError("refresh_token is empty: paste the refresh token from your MLOps profile, "
                             "or log in with mlops_nb.login()")
        if not isinstance(client_id, str) or not client_id.strip():
            raise ValueError("client_id is empty: give the OpenID client ID your administrator named "
                             "(the seed's CLIENT_ID)")
        self._token_endpoint = validate_gateway_url(token_endpoint_url, "token_endpoint_url")
        self._client_id = client_id.strip()
        self._client_secret = client_secret or None
        if isinstance(expiry_threshold_band, timedelta):
            expiry_threshold_band = expiry_threshold_band.total_seconds()
        self._threshold = float(expiry_threshold_band)
        self._timeout = timeout
        self._session = _session(ca_bundle if (ca_bundle and verify) else verify, session, self._token_endpoint,
                                 proxies)
        self._ca_bundle = self._session.verify if isinstance(self._session.verify, str) else None
        self._state = _TokenState(refresh_token.strip())  # read without the lock, replaced whole under it
        self._lock = threading.Lock()
        self.refresh_count = 0

    @classmethod
    def from_issuer(cls, issuer_url: str, refresh_token: str, client_id: str, client_secret: str | None = None,
                    **kwargs: Any) -> TokenProvider:
        """Build one from the issuer (``https://HOST/auth/realms/REALM``) by OpenID discovery."""
        config = discover(issuer_url, verify=kwargs.get("ca_bundle") or kwargs.get("verify", True),
                          timeout=kwargs.get("timeout", 30.0))
        return cls(refresh_token, client_id, config.token_endpoint, client_secret, **kwargs)

    @classmethod
    def _from_tokens(cls, body: dict[str, Any], client_id: str, token_endpoint: str,
                     client_secret: str | None, **kwargs: Any) -> TokenProvider:
        """From a token response already in hand (the device grant's)."""
        provider = cls(body["refresh_token"], client_id, token_endpoint, client_secret, **kwargs)
        provider._state = provider._state.after(body, time.monotonic())
        return provider

    # -- public --------------------------------------------------------------------------

    @property
    def client_id(self) -> str:
        return self._client_id

    @property
    def token_endpoint_url(self) -> str:
        return self._token_endpoint

    @property
    def ca_bundle(self) -> str | None:
        """The CA file trusted for the token endpoint (None: the system's, or TLS checks off)."""
        return self._ca_bundle

    @ca_bundle.setter
    def ca_bundle(self, path: str) -> None:
        if self._session.verify is False:
            return  # verify=False was chosen for this provider; a client's bundle does not undo it
        self._session.verify = self._ca_bundle = tls_verify(True, path, self._token_endpoint)  # type: ignore[assignment]

    @property
    def expires_in(self) -> float:
        """Seconds until the current access token expires (0 when there is none)."""
        state = self._state
        return max(0.0, state.expires_at - time.monotonic()) if state.access_token else 0.0

    def __call__(self) -> str:
        return self.ensure_fresh_token()

    def ensure_fresh_token(self) -> str:
        """The current access token, exchanged first if it is missing or about to expire."""
        token = self._state.usable_token(self._threshold, time.monotonic())
        if token:
            return token
        with self._lock:
            # Another thread may have refreshed while this one waited for the lock.
            return self._state.usable_token(self._threshold, time.monotonic()) or self._refresh()

    def force_refresh(self) -> None:
        """Exchange the refresh token now."""
        with self._lock:
            self._refresh()

    def token_rejected(self, token: str) -> None:
        """The gateway refused ``token``: exchange the refresh token, unless another thread
        already replaced that token (then the new one is used, with no second exchange)."""
        with self._lock:
            if self._state.access_token in (None, token):
                self._refresh()

    def __repr__(self) -> str:
        state = f"access token valid for {self.expires_in:.0f} s" if self._state.access_token else "no access token yet"
        secret = ", confidential client" if self._client_secret else ""
        return f"TokenProvider(client_id={self._client_id!r}, token_endpoint_url={self._token_endpoint!r}{secret}; {state})"

    __str__ = __repr__

    def __getstate__(self) -> None:
        raise TypeError("a TokenProvider holds secrets and is not picklable; build a new one where needed")

    # -- internals ------------------------------------------------------------------------

    def _refresh(self) -> str:
        """Exchange the refresh token (the caller holds the lock); returns the new access token."""
        form = self._state.grant(self._client_id, self._client_secret)
        status, body = _post_form(self._session, self._token_endpoint, form, self._timeout, "token endpoint")
        if status != 200 or "access_token" not in body:
            raise _oauth_error(body, status) from None
        self._state = state = self._state.after(body, time.monotonic())
        self.refresh_count += 1
        log.info("refreshed the access token for client %s (valid %s s)", self._client_id, body.get("expires_in"))
        return state.access_token  # type: ignore[return-value]


@dataclass
class DeviceLogin:
    """The OAuth 2.0 device authorization grant (RFC 8628): sign in through a browser.

    ``start()`` asks the provider for a code; show ``verification_uri_complete``
    (or ``verification_uri`` and ``user_code``) to the user; ``poll()`` until it
    returns a :class:`TokenProvider` (or raises ``AuthenticationError`` when the
    user denied or the code expired).
    """

    device_authorization_endpoint: str
    token_endpoint: str
    client_id: str
    client_secret: str | None = field(default=None, repr=False)
    verify: bool | str = True
    timeout: float = 30.0
    user_code: str = ""
    verification_uri: str = ""
    verification_uri_complete: str = ""
    expires_in: float = 0.0
    interval: float = 5.0
    _device_code: str = field(default="", repr=False)
    _deadline: float = field(default=0.0, repr=False)
    _session: requests.Session | None = field(default=None, repr=False)

    @classmethod
    def from_issuer(cls, issuer_or_token_endpoint: str, client_id: str, client_secret: str | None = None,
                    *, verify: bool | str = True, timeout: float = 30.0) -> DeviceLogin:
        config = discover(issuer_or_token_endpoint, verify=verify, timeout=timeout)
        if not config.device_authorization_endpoint:
            raise AuthenticationError(
                "this identity provider does not offer sign-in with a browser (device authorization grant); "
                "log in with a refresh token instead", error="unsupported_grant_type")
        return cls(config.device_authorization_endpoint, config.token_endpoint, client_id, client_secret,
                   verify=verify, timeout=timeout)

    def _http(self) -> requests.Session:
        if self._session is None:
            self._session = _session(self.verify, None, self.token_endpoint)
        return self._session

    def start(self) -> DeviceLogin:
        data = {"client_id": self.client_id, "scope": "openid"}
        if self.client_secret:
            data["client_secret"] = self.client_secret
        status, body = _post_form(self._http(), self.device_authorization_endpoint, data, self.timeout,
                                  "device authorization endpoint")
        if status != 200 or "device_code" not in body:
            raise _oauth_error(body, status)
        self._device_code = body["device_code"]
        self.user_code = body.get("user_code", "")
        self.verification_uri = body.get("verification_uri", "")
        self.verification_uri_complete = body.get("verification_uri_complete") or self.verification_uri
        self.expires_in = float(body.get("expires_in", 600))
        self.interval = float(body.get("interval", 5))
        self._deadline = time.monotonic() + self.expires_in
        return self

    def poll_once(self) -> TokenProvider | None:
        """One poll: a ``TokenProvider`` once approved, ``None`` while pending."""
        if not self._device_code:
            raise RuntimeError("call start() before polling")
        data = {"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "client_id": self.client_id,
                "device_code": self._device_code}
        if self.client_secret:
            data["client_secret"] = self.client_secret
        status, body = _post_form(self._http(), self.token_endpoint, data, self.timeout, "token endpoint")
        if status == 200 and "access_token" in body:
            return TokenProvider._from_tokens(body, self.client_id, self.token_endpoint, self.client_secret,
                                              verify=self.verify if isinstance(self.verify, bool) else True,
                                              ca_bundle=self.verify if isinstance(self.verify, str) else None,
                                              timeout=self.timeout)
        error = body.get("error")
        if error == "authorization_pending":
            return None
        if error == "slow_down":
            self.interval += 5
            return None
        raise _oauth_error(body, status)

    def poll(self, *, sleep: Callable[[float], None] = time.sleep,
             cancelled: Callable[[], bool] = lambda: False) -> TokenProvider | None:
        """Poll at the provider's interval until approved (returns the provider), denied or expired
        (raises ``AuthenticationError``), or ``cancelled()`` turns true (returns ``None``)."""
        while not cancelled():
            provider = self.poll_once()
            if provider is not None:
                return provider
            if time.monotonic() > self._deadline:
                raise AuthenticationError(f"expired_token: {_ADVICE['expired_token']}", error="expired_token")
            sleep(self.interval)
        return None
