"""``mlops_nb.login()``: a form that logs in to MLOps and makes that login the session's.

The form asks for the four constants of the seed's ``connection.py``, or, for MLOps in an
H2O AI Cloud environment (MLOps 1.0 and later, the workspaces generation of the API), only
the environment's URL: its discovery documents name the gateways, the identity provider and
the ``platform`` client, as ``h2o_mlops.Client(h2o_cloud_url=...)`` finds them
(:meth:`mlops_nb.Client.from_discovery`); the refresh token is then the platform token of the
environment's "CLI & API access" page. Each non-secret field starts with the first value found
in: the argument given to :func:`login`, the environment, the user's config file:

* H2O AI Cloud URL: ``H2O_CLOUD_ENVIRONMENT``, config key ``cloud_url``
* gateway URL: ``H2O_MLOPS_GATEWAY``, config key ``gateway_url``
* issuer or token endpoint: ``TOKEN_ENDPOINT``, config key ``token_endpoint``
* client ID: ``CLIENT_ID``, config key ``client_id``
* CA bundle and verify TLS (under "Advanced"): config keys ``ca_bundle``, ``verify_tls``

The config file is JSON (Python 3.10 has no TOML reader): ``$MLOPS_NB_CONFIG``
if set, else ``$XDG_CONFIG_HOME/mlops_nb/config.json`` (``~/.config/mlops_nb/config.json``).
It holds no secrets; other keys are ignored.

Either an issuer (``https://HOST/auth/realms/REALM``, found by OpenID discovery)
or the token endpoint itself works. Where the identity provider offers the device
grant, "Sign in with browser" logs in without copying a token.

Secrets: a token pasted into the form is taken out of the widget (its value is
set back to ``""``) the moment the form reads it, so widget state saved with a
notebook, and exports of it, never hold it. ``REFRESH_TOKEN`` (with an H2O AI Cloud URL
also ``H2O_CLOUD_CLIENT_PLATFORM_TOKEN``) from the environment is used without ever
entering a widget.

The client logged in speaks the gateway's generation of the API: found on first use for a
gateway URL, the workspaces generation where discovery lists an authz gateway. No token appears in any message the form
shows.
"""

from __future__ import annotations

import html
import json
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import requests

from mlops_nb.notebook.client import Client
from mlops_nb.notebook.display import _link, card_html
from mlops_nb.notebook.session import set_current_client
from mlops_nb.notebook.settings import settings
from mlops_nb.wire.auth import DeviceLogin, TokenProvider, discover
from mlops_nb.wire.discovery import discover_cloud
from mlops_nb.wire.errors import (
    ApiError,
    AuthenticationError,
    ConnectionFailed,
    DiscoveryError,
    GatewayError,
    PermissionDenied,
    Unauthenticated,
)
from mlops_nb.wire.messages import Message
from mlops_nb.wire.transport import validate_gateway_url

__all__ = ["LoginForm", "LoginSettings", "config_path", "describe_failure", "login", "login_settings"]

ENV_CLOUD = "H2O_CLOUD_ENVIRONMENT"
ENV_PLATFORM_TOKEN = "H2O_CLOUD_CLIENT_PLATFORM_TOKEN"
ENV_GATEWAY = "H2O_MLOPS_GATEWAY"
ENV_TOKEN_ENDPOINT = "TOKEN_ENDPOINT"
ENV_CLIENT_ID = "CLIENT_ID"
ENV_REFRESH_TOKEN = "REFRESH_TOKEN"
ENV_CONFIG = "MLOPS_NB_CONFIG"

# Which step of a login failed decides whose fault a connection error is.
IDENTITY_PROVIDER = "the identity provider"
GATEWAY = "the MLOps gateway"
CLOUD = "the H2O AI Cloud environment"


# -- where the form's initial values come from ---------------------------------------------------


@dataclass(frozen=True)
class LoginSettings:
    """The non-secret values of a login."""

    cloud_url: str = ""
    gateway_url: str = ""
    token_endpoint: str = ""
    client_id: str = ""
    ca_bundle: str = ""
    verify_tls: bool = True


_ENVIRONMENT_KEYS = {"cloud_url": ENV_CLOUD, "gateway_url": ENV_GATEWAY, "token_endpoint": ENV_TOKEN_ENDPOINT, "client_id": ENV_CLIENT_ID}


def config_path(environ: Mapping[str, str] | None = None) -> Path:
    """The user's config file: ``$MLOPS_NB_CONFIG``, else ``$XDG_CONFIG_HOME/mlops_nb/config.json``."""
    env = os.environ if environ is None else environ
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG]).expanduser()
    base = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "mlops_nb" / "config.json"


def _read_config(path: Path) -> tuple[dict[str, Any], str]:
    """(known keys with values of the right type, a problem to tell the user or "")."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, ""
    except (OSError, ValueError) as e:
        return {}, f"could not read {path} ({e}); fill the fields in by hand"
    if not isinstance(data, dict):
        return {}, f"{path} must hold a JSON object; it was ignored"
    types = {f.name: type(f.default) for f in fields(LoginSettings)}
    values = {k: v for k, v in data.items() if k in types and isinstance(v, types[k])}
    wrong = sorted(k for k in data if k in types and k not in values)
    problem = f"{path}: ignored {', '.join(wrong)} (wrong type)" if wrong else ""
    return values, problem


def login_settings(environ: Mapping[str, str] | None = None) -> tuple[LoginSettings, str]:
    """The form's initial values from the environment over the config file, and any config problem."""
    env = os.environ if environ is None else environ
    values, problem = _read_config(config_path(env))
    values.update({name: env[var].strip() for name, var in _ENVIRONMENT_KEYS.items() if env.get(var, "").strip()})
    return LoginSettings(**values), problem


# -- what went wrong, in words a user can act on ----------------------------------------------------

# Headlines that lead with the identity provider's own reason when it gives one: for these codes
# our headline can only guess the reason.
_AUTH_REFUSALS = {"invalid_grant": "The refresh token was refused"}
_AUTH_HEADLINES = {
    "invalid_grant": "The refresh token was refused: it is expired, revoked or belongs to another client",
    "invalid_client": "The identity provider does not accept this client ID",
    "not_oidc": "That URL is not an issuer or token endpoint",
    "access_denied": "The sign-in was denied",
    "expired_token": "The sign-in code expired before it was approved",
    "unsupported_grant_type": "This identity provider does not offer that way of signing in",
}


def describe_failure(error: BaseException, stage: str) -> tuple[str, str]:
    """A short headline for a failed login step (``stage``: whom it talked to) and the detail."""
    detail = str(error)
    if isinstance(error, DiscoveryError):
        return "H2O AI Cloud discovery failed", detail
    if isinstance(error, AuthenticationError):
        refused = _AUTH_REFUSALS.get(error.error or "")
        if refused and error.description:  # the identity provider said why, instead of our guesses
            return f"{refused}: {error.description}", detail
        return _AUTH_HEADLINES.get(error.error or "", "The identity provider refused to log you in"), detail
    if isinstance(error, ConnectionFailed):
        # The wire layer raises these from within its handler of requests' SSLError.
        if isinstance(error.__context__, requests.exceptions.SSLError):
            return f"TLS verification failed for {stage}", detail
        return f"Cannot reach {stage}", detail
    if isinstance(error, (Unauthenticated, PermissionDenied)):
        return "The gateway rejected the token", (
            f"{detail}. The gateway does not accept tokens from this identity provider or client: check that "
            "the issuer (or token endpoint) and the client ID belong to this MLOps installation."
        )
    if isinstance(error, GatewayError):
        return "That URL does not answer like an MLOps gateway", detail
    if isinstance(error, ApiError):
        return f"The gateway answered {error.code_name}", detail
    return "Login failed", f"{type(error).__name__}: {detail}"


# -- the form ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """The checked fields of one attempt (with ``cloud_url``, the others come from its discovery)."""

    cloud_url: str
    gateway_url: str
    token_endpoint: str
    client_id: str
    verify: bool
    ca_bundle: str | None

    @property
    def tls(self) -> bool | str:
        """What requests' ``verify`` gets: False, True or the CA bundle's path."""
        return self.ca_bundle if (self.verify and self.ca_bundle) else self.verify


# How the form names each generation of the API to the user.
_GENERATIONS = {"legacy": "MLOps API with projects", "workspaces": "MLOps API with workspaces"}

_TONES = {
    "progress": "var(--jp-ui-font-color2, #616161)",
    "error": "var(--jp-error-color1, #c62828)",
    "ok": "var(--jp-success-color1, #2e7d32)",
    "info": "var(--jp-ui-font-color1, inherit)",
}
_WIDTH = "44em"
_LABEL_STYLE = {"description_width": "13em"}


def _message_html(tone: str, headline: str, detail: str = "") -> str:
    parts = [f"<b>{html.escape(headline)}</b>"] if headline else []
    if detail:
        parts.append(f"<span>{html.escape(detail)}</span>")
    return f'<div style="color:{_TONES[tone]};line-height:1.4;max-width:60em">{"<br>".join(parts)}</div>'


class LoginForm(widgets.VBox):
    """The login form (see the module docstring); :func:`login` makes one.

    After a successful login ``form.client`` is the new :class:`mlops_nb.Client`
    (also the session's current client) and ``form.user`` the ``StorageUser``; after
    a failure ``form.error`` is the exception and the form says what to do. While a
    browser sign-in waits for approval, ``form.pending_sign_in`` is its
    :class:`~mlops_nb.DeviceLogin` (``verification_uri_complete``, ``user_code``).

    With ``background=True`` (the default) network work runs in a thread so the
    kernel stays responsive and Cancel works; ``form.wait()`` joins it. With
    ``background=False`` the buttons' handlers do everything before returning
    (scripts and tests).
    """

    def __init__(
        self,
        gateway_url: str | None = None,
        token_endpoint: str | None = None,
        client_id: str | None = None,
        *,
        cloud_url: str | None = None,
        ca_bundle: str | None = None,
        verify_tls: bool | None = None,
        background: bool = True,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._environ = os.environ if environ is None else environ
        initial, config_problem = login_settings(self._environ)
        given = {"cloud_url": cloud_url, "gateway_url": gateway_url, "token_endpoint": token_endpoint,
                 "client_id": client_id, "ca_bundle": ca_bundle, "verify_tls": verify_tls}
        initial = replace(initial, **{k: v for k, v in given.items() if v is not None})

        self.background = background
        self.client: Client | None = None
        self.user: Message | None = None
        self.error: BaseException | None = None
        self.pending_sign_in: DeviceLogin | None = None
        # Secrets read out of the password fields, kept here (never in a widget) for a retry.
        self._secrets: dict[str, str] = {}
        self._cancel = threading.Event()
        self._worker: threading.Thread | None = None
        self._stage = IDENTITY_PROVIDER

        def text(description: str, value: str, placeholder: str) -> widgets.Text:
            return widgets.Text(value=value, description=description, placeholder=placeholder,
                                style=_LABEL_STYLE, layout=widgets.Layout(width=_WIDTH))

        def password(description: str, placeholder: str) -> widgets.Password:
            return widgets.Password(description=description, placeholder=placeholder, style=_LABEL_STYLE,
                                    layout=widgets.Layout(width=_WIDTH))

        self.cloud_url = text("H2O AI Cloud URL", initial.cloud_url,
                              "https://cloud.my.domain: finds the rest (leave empty to give them below)")
        self.gateway_url = text("Gateway URL", initial.gateway_url, "https://api.mlops.my.domain")
        self.token_endpoint = text("Issuer or token endpoint", initial.token_endpoint,
                                   "https://HOST/auth/realms/REALM (or its token endpoint)")
        self.client_id = text("Client ID", initial.client_id, "the client your administrator named")
        self.refresh_token = password("Refresh token", "paste your refresh token, then press Enter")
        self.client_secret = password("Client secret", "only for a confidential client")
        self.ca_bundle = text("CA bundle", initial.ca_bundle,
                              "/path/to/ca.pem, for a private certificate authority")
        self.verify_tls = widgets.Checkbox(value=initial.verify_tls, description="Verify TLS certificates",
                                           indent=False)
        self.login_button = widgets.Button(description="Log in", button_style="primary", icon="sign-in",
                                           layout=widgets.Layout(width="auto"))
        self.browser_button = widgets.Button(description="Sign in with browser", icon="external-link",
                                             tooltip="Approve this login in your browser (OAuth device grant)",
                                             layout=widgets.Layout(width="auto"))
        self.cancel_button = widgets.Button(description="Cancel", icon="times",
                                            layout=widgets.Layout(display="none"))
        self.status = widgets.HTML()
        self.device = widgets.HTML(layout=widgets.Layout(display="none"))
        self.card = widgets.HTML()

        self._field_messages = {name: widgets.HTML(layout=widgets.Layout(display="none"))
                                for name in ("cloud_url", "gateway_url", "token_endpoint", "client_id",
                                             "refresh_token", "ca_bundle")}
        self._token_note = widgets.HTML()
        self.advanced = widgets.Accordion(
            children=[widgets.VBox([self.client_secret, self.ca_bundle, self._field_messages["ca_bundle"],
                                    self.verify_tls])],
            titles=("Advanced",),
        )
        notes = widgets.HTML(_message_html("info", "Config file", config_problem) if config_problem else "")
        super().__init__(children=[
            self.cloud_url, self._field_messages["cloud_url"],
            self.gateway_url, self._field_messages["gateway_url"],
            self.token_endpoint, self._field_messages["token_endpoint"],
            self.client_id, self._field_messages["client_id"],
            self.refresh_token, self._field_messages["refresh_token"], self._token_note,
            self.advanced,
            notes,
            widgets.HBox([self.login_button, self.browser_button, self.cancel_button]),
            self.status, self.device, self.card,
        ])
        self._inputs: list[widgets.DOMWidget] = [self.cloud_url, self.gateway_url, self.token_endpoint, self.client_id,
                                                 self.refresh_token, self.client_secret, self.ca_bundle,
                                                 self.verify_tls]
        self.login_button.on_click(self._on_login)
        self.browser_button.on_click(self._on_browser)
        self.cancel_button.on_click(self._on_cancel)
        # Enter in a text field sends a "submit" message (ipywidgets 8's on_submit is deprecated
        # in favour of observing value, which cannot tell Enter from leaving the field).
        self.refresh_token.on_msg(self._on_field_message)
        self._update_token_note()

    # -- handlers ----------------------------------------------------------------------------------

    def _on_field_message(self, _widget: widgets.Widget, content: Any, _buffers: Any) -> None:
        if isinstance(content, dict) and content.get("event") == "submit":
            self._on_login()

    def _on_login(self, _button: widgets.Button | None = None) -> None:
        if self.busy:
            return
        token = self._read_secret(self.refresh_token, "refresh_token") or self._environment_token(
            cloud=bool(self.cloud_url.value.strip()))
        secret = self._read_secret(self.client_secret, "client_secret")
        target = self._check_fields(token_missing=not token)
        if target is not None:
            self._start("Logging in…", lambda: self._log_in_with_refresh_token(target, token, secret))

    def _on_browser(self, _button: widgets.Button | None = None) -> None:
        if self.busy:
            return
        secret = self._read_secret(self.client_secret, "client_secret")
        target = self._check_fields(token_missing=False)
        if target is not None:
            self._cancel.clear()
            self._start("Asking the identity provider for a sign-in code…",
                        lambda: self._sign_in_with_browser(target, secret))

    def _on_cancel(self, _button: widgets.Button | None = None) -> None:
        self._cancel.set()
        self._show("progress", "Cancelling…")

    # -- public --------------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Whether a login attempt is running."""
        return self._worker is not None and self._worker.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a background attempt to end; returns False if it is still running after ``timeout``."""
        worker = self._worker
        if worker is None:
            return True
        worker.join(timeout)
        return not worker.is_alive()

    # -- the work ------------------------------------------------------------------------------------

    def _start(self, message: str, job: Callable[[], None]) -> None:
        self.error = None
        self.card.value = ""
        self._set_busy(True)
        self._show("progress", message)
        if self.background:
            self._worker = threading.Thread(target=self._attempt, args=(job,), name="mlops-nb-login", daemon=True)
            self._worker.start()
        else:
            self._attempt(job)

    def _attempt(self, job: Callable[[], None]) -> None:
        try:
            job()
        except Exception as e:  # every failure ends up in the form, in words, not in a thread's traceback
            # Its frames' locals hold the token; a verbose traceback of form.error must not show them.
            self.error = e.with_traceback(None)
            headline, detail = describe_failure(e, self._stage)
            self._show("error", headline, self._redact(detail))
        finally:
            self._set_busy(False)
            self._update_token_note()

    def _step(self, stage: str, message: str) -> None:
        self._stage = stage
        self._show("progress", message)

    def _discovered(self, target: _Target) -> _Target:
        """With an H2O AI Cloud URL: the target with the gateway, issuer and platform client its
        discovery names (the client ID typed for a gateway belongs to another login)."""
        if not target.cloud_url:
            return target
        self._step(CLOUD, "Reading the H2O AI Cloud environment's discovery documents…")
        found = discover_cloud(target.cloud_url, verify=target.verify, ca_bundle=target.ca_bundle,
                               timeout=settings.timeout)
        missing = [what for what, value in (("an MLOps API (mlops-api) service", found.gateway_url),
                                            ("the platform client", found.platform_client_id)) if not value]
        if missing:
            raise DiscoveryError(f"{found.discovery_url} lists no {' and no '.join(missing)}; is MLOps installed in "
                                 "this environment? Otherwise give the gateway URL, issuer and client ID instead")
        return replace(target, gateway_url=found.gateway_url or "", token_endpoint=found.issuer_url,
                       client_id=found.platform_client_id or "")

    def _log_in_with_refresh_token(self, target: _Target, token: str, secret: str) -> None:
        target = self._discovered(target)
        self._step(IDENTITY_PROVIDER, "Finding the identity provider…")
        endpoint = self._resolve_token_endpoint(target)
        provider = TokenProvider(token, target.client_id, endpoint, secret or None, verify=target.verify,
                                 ca_bundle=target.ca_bundle, timeout=settings.timeout)
        self._step(IDENTITY_PROVIDER, "Exchanging the refresh token for an access token…")
        try:
            provider()
        except AuthenticationError as e:
            if e.error == "invalid_grant":
                self._secrets.pop("refresh_token", None)
            raise
        self._connect(target, provider)

    def _resolve_token_endpoint(self, target: _Target) -> str:
        try:
            return discover(target.token_endpoint, verify=target.tls, timeout=settings.timeout).token_endpoint
        except AuthenticationError as e:
            if e.error != "not_oidc":
                raise
            # Not an issuer: maybe a non-Keycloak token endpoint; exchanging the token will tell.
            return target.token_endpoint

    def _sign_in_with_browser(self, target: _Target, secret: str) -> None:
        target = self._discovered(target)
        self._step(IDENTITY_PROVIDER, "Asking the identity provider for a sign-in code…")
        device = DeviceLogin.from_issuer(target.token_endpoint, target.client_id, secret or None,
                                         verify=target.tls, timeout=settings.timeout).start()
        self.pending_sign_in = device
        self._show_device(device)
        try:
            provider = device.poll(sleep=self._cancel.wait, cancelled=self._cancel.is_set)
        finally:
            self.pending_sign_in = None
            self.device.value = ""
            self.device.layout.display = "none"
            self.cancel_button.layout.display = "none"
        if provider is None:
            self._show("info", "Sign-in cancelled.")
            return
        self._connect(target, provider)

    def _connect(self, target: _Target, provider: TokenProvider) -> None:
        if target.cloud_url:
            self._step(CLOUD, "Reading the H2O AI Cloud environment's discovery documents…")
            client = Client.from_discovery(target.cloud_url, token_provider=provider, verify=target.verify,
                                           ca_bundle=target.ca_bundle)
        else:
            client = Client(target.gateway_url, provider, verify=target.verify, ca_bundle=target.ca_bundle)
        self._step(GATEWAY, "Asking the gateway who you are…")
        try:
            # who_am_i finds the gateway's generation first: a StorageUser, or the workspaces one's V1User.
            user = client.who_am_i().user
        except BaseException:
            client.close()
            raise
        set_current_client(client, user)
        self.client, self.user = client, user
        self._secrets.clear()
        self.card.value = card_html(user) or ""
        name = getattr(user, "username", None) or getattr(user, "login_principal", None) or user.display_name
        self._show("ok", f"Logged in as {name} at {client.gateway_url} ({_GENERATIONS[client.generation]})",
                   "%mlops commands and mlops_nb.current_client() use this login now.")

    # -- fields ----------------------------------------------------------------------------------------

    def _read_secret(self, widget: widgets.Password, key: str) -> str:
        """Take a pasted secret out of its widget (so no widget state holds it); keep it for a retry."""
        typed = widget.value.strip()
        widget.value = ""
        if typed:
            self._secrets[key] = typed
        return self._secrets.get(key, "")

    def _environment_token(self, *, cloud: bool = False) -> str:
        """``REFRESH_TOKEN``; for an H2O AI Cloud URL, the platform token variable first (as h2o-mlops reads it)."""
        names = (ENV_PLATFORM_TOKEN, ENV_REFRESH_TOKEN) if cloud else (ENV_REFRESH_TOKEN,)
        return next((v for name in names if (v := self._environ.get(name, "").strip())), "")

    def _check_fields(self, *, token_missing: bool) -> _Target | None:
        problems: dict[str, str] = {}
        values: dict[str, str] = {}
        cloud = bool(self.cloud_url.value.strip())
        # With an H2O AI Cloud URL, discovery gives the rest: the other fields are not asked for.
        urls = [("cloud_url", "the H2O AI Cloud URL", "https://cloud.my.domain")] if cloud else [
            ("gateway_url", "the gateway URL", "https://api.mlops.my.domain"),
            ("token_endpoint", "the issuer or token endpoint", "https://HOST/auth/realms/REALM")]
        for name, what, example in urls:
            typed = getattr(self, name).value.strip()
            if not typed:
                problems[name] = f"Enter {what}, e.g. {example}, or an H2O AI Cloud URL above"
                continue
            try:
                values[name] = validate_gateway_url(typed, what)
            except ValueError:
                problems[name] = f"{what[0].upper()}{what[1:]} must be an http:// or https:// URL, e.g. {example}"
        if not cloud and not self.client_id.value.strip():
            problems["client_id"] = "Enter the client ID your administrator gave you (the seed's CLIENT_ID)"
        if token_missing:
            problems["refresh_token"] = "Paste your refresh token, or use Sign in with browser"
        bundle = self.ca_bundle.value.strip()
        if bundle and not Path(bundle).expanduser().is_file():
            problems["ca_bundle"] = f"There is no file at {bundle}"
            self.advanced.selected_index = 0
        for name, message in self._field_messages.items():
            problem = problems.get(name, "")
            message.value = _message_html("error", problem) if problem else ""
            message.layout.display = None if problem else "none"
        if problems:
            self._show("error", "Some fields need attention", "See the messages under them.")
            return None
        return _Target(values.get("cloud_url", ""), values.get("gateway_url", ""), values.get("token_endpoint", ""),
                       "" if cloud else self.client_id.value.strip(), self.verify_tls.value,
                       str(Path(bundle).expanduser()) if bundle else None)

    # -- what the form shows ----------------------------------------------------------------------------

    def _show(self, tone: str, headline: str, detail: str = "") -> None:
        self.status.value = _message_html(tone, headline, detail)

    def _show_device(self, device: DeviceLogin) -> None:
        minutes = max(1, round(device.expires_in / 60))
        self.device.value = (
            f"<div style='line-height:1.6'>Open {_link(device.verification_uri_complete)} and approve the code "
            f"<code style='font-size:1.3em;font-weight:600'>{html.escape(device.user_code)}</code>"
            f" (the link fills it in; {_link(device.verification_uri)} asks for it). "
            f"The code expires in about {minutes} minute{'s' if minutes != 1 else ''}.</div>"
        )
        self.device.layout.display = None
        self.cancel_button.layout.display = None
        self._show("progress", "Waiting for you to approve the sign-in in your browser…")

    def _set_busy(self, busy: bool) -> None:
        for widget in (*self._inputs, self.login_button, self.browser_button):
            widget.disabled = busy
        self.login_button.description = "Logging in…" if busy else "Log in"
        self.login_button.icon = "spinner" if busy else "sign-in"

    def _update_token_note(self) -> None:
        if "refresh_token" in self._secrets:
            note = ("The token you pasted is kept (not in the form) for the next attempt; "
                    "paste another to replace it.")
        elif self._environment_token():
            note = f"{ENV_REFRESH_TOKEN} is set in this kernel's environment: it is used unless you paste a token."
        else:
            note = ""
        self._token_note.value = _message_html("info", "", note) if note else ""

    def _redact(self, text: str) -> str:
        """Defence in depth: the wire layer never puts a token in a message; a bug elsewhere might."""
        for secret in (*self._secrets.values(), self._environment_token(), self._environment_token(cloud=True)):
            if secret:
                text = text.replace(secret, "[redacted]")
        return text


def login(
    gateway_url: str | None = None,
    token_endpoint: str | None = None,
    client_id: str | None = None,
    *,
    cloud_url: str | None = None,
    ca_bundle: str | None = None,
    verify_tls: bool | None = None,
    background: bool = True,
) -> LoginForm:
    """The login form; as the last line of a cell it shows itself.

    Arguments prefill the fields (over the environment and the config file, see
    :mod:`mlops_nb.notebook.login`); ``cloud_url`` (an H2O AI Cloud environment's URL)
    stands for the other three. A successful login becomes the session's current
    client (``mlops_nb.current_client()``, every ``%mlops`` command) and is
    ``form.client``. ``background=False`` makes the buttons block until done.
    """
    return LoginForm(gateway_url, token_endpoint, client_id, cloud_url=cloud_url, ca_bundle=ca_bundle,
                     verify_tls=verify_tls, background=background)
