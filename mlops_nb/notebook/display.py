"""Rich displays: cards for entities, interactive tables for list frames.

Cards
-----
Users, projects, experiments, registered models and their versions, artifacts and
deployments (storage and deployer) display as cards: ``_repr_html_`` (registered
with the wire layer's message classes) and a short text form for terminals and
logs (:func:`card_text`; IPython shows it as ``text/plain``). A response made of
exactly one such entity (``StorageWhoAmIResponse``, ``StorageGetProjectResponse``,
...) shows that entity's card. The workspaces generation's entities use the same cards
where they are the same thing (a workspace is shown as a project is, a ``V2Deployment`` as
a deployer deployment, a ``V1User`` as a user): a card reads each value under whichever of
its names the message has (``_get``), so one card serves both generations. Runtimes, runtime
images, endpoints and batch scoring jobs have cards of their own. Card HTML is self-contained (inline styles, no
external CSS, JS or fonts), follows JupyterLab's light and dark themes through
``--jp-*`` variables with theme-neutral fallbacks, and escapes every value that
came from a server. Owners show as usernames when a live client has seen the
user (``Client.usernames``), else as ids.

Tables
------
List frames, and frames derived from them (pandas keeps their ``attrs`` marker),
display as interactive itables tables, offline: the DataTables bundle that ships
with itables is embedded in the first table this process displays. Each table's
HTML starts with a static table of its first rows, visible wherever JavaScript
does not run (untrusted notebooks, GitHub, exports read without scripts); a small
script swaps it for the interactive table once DataTables has drawn it, so a
table whose bundle is missing keeps showing its static rows. Settings
(:mod:`mlops_nb.notebook.settings`) turn interactive tables off and cap the rows
put in a table. Other DataFrames are left alone.
"""

from __future__ import annotations

import base64
import html
import json
import sys
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from mlops_nb.api import CATALOGS, description
from mlops_nb.notebook import catalogs
from mlops_nb.notebook.client import (
    known_deployment_name,
    known_deployment_status,
    known_experiment_name,
    known_scoring_url,
    known_username,
    resource_id,
)
from mlops_nb.notebook.frames import FRAME_ATTR, LOG_ATTR, register_frame_renderer
from mlops_nb.notebook.settings import settings
from mlops_nb.wire.messages import (
    GENERATION_MODULES,
    Message,
    generation_of,
    message_class,
    register_html_renderer,
)

__all__ = ["card_html", "card_text", "frame_html", "has_card", "install_ipython_formatters", "show_table"]

# -- card model -----------------------------------------------------------------------------


@dataclass
class _Row:
    label: str
    html: str
    text: str


@dataclass
class _Card:
    kind: str
    title: str
    ident: str = ""
    badge: str = ""  # an enum value, e.g. HEALTHY
    description: str = ""
    rows: list[_Row] = field(default_factory=list)


@dataclass
class _Context:
    now: datetime
    username: Callable[[str], str | None]
    deployment_status: Callable[[str], Message | None]
    experiment_name: Callable[[str], str | None]
    deployment_name: Callable[[str], str | None]
    scoring_url: Callable[[str], str | None]


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


@cache
def _field_names(cls: type[Message]) -> frozenset[str]:
    return frozenset(f.name for f in cls.fields())


def _get(m: Message | None, *names: str) -> Any:
    """The value of the first of ``names`` that ``m``'s message has (the generations name some of the
    same things differently: ``created_time`` / ``create_time``, ``runtime_name`` / ``runtime``); None
    when it has none of them, or for no message."""
    if m is None:
        return None
    fields = _field_names(type(m))
    return next((getattr(m, name) for name in names if name in fields), None)


def _ident(m: Message) -> str:
    """What names an entity in calls: a legacy entity's ``id``, a workspaces resource's ``name``."""
    return _get(m, "id") or _get(m, "name") or ""


def _title(m: Message) -> str:
    """A card's title: the entity's display name, else its id (a workspaces name's last part)."""
    return _get(m, "display_name") or resource_id(_ident(m))


def _created(m: Message, ctx: _Context) -> _Row | None:
    return _time_row("created", _get(m, "created_time", "create_time"), ctx)


def _modified(m: Message, ctx: _Context, label: str = "modified") -> _Row | None:
    return _time_row(label, _get(m, "last_modified_time", "update_time"), ctx)


# -- values ------------------------------------------------------------------------------------

_UNITS = ((365 * 86400, "year"), (30 * 86400, "month"), (7 * 86400, "week"), (86400, "day"),
          (3600, "hour"), (60, "minute"))


def _relative_time(when: datetime, now: datetime) -> str:
    """``3 days ago``, ``in 2 hours``, ``just now``."""
    seconds = (now - when).total_seconds()
    span = abs(seconds)
    for size, unit in _UNITS:
        if span >= size:
            count = int(span // size)
            amount = f"{count} {unit}{'s' if count != 1 else ''}"
            return f"{amount} ago" if seconds > 0 else f"in {amount}"
    return "just now"


def _absolute_time(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _time_row(label: str, when: datetime | None, ctx: _Context) -> _Row | None:
    if when is None:
        return None
    rel, absolute = _relative_time(when, ctx.now), _absolute_time(when)
    iso = when.astimezone(timezone.utc).isoformat()
    return _Row(label, f'<time datetime="{_e(iso)}" title="{_e(absolute)}">{_e(rel)}</time> '
                       f'<span style="{_MUTED}">{_e(absolute)}</span>', f"{rel} ({absolute})")


def _text_row(label: str, value: Any) -> _Row | None:
    if value in (None, "", [], {}):
        return None
    return _Row(label, _e(value), str(value))


def _id_row(label: str, value: str) -> _Row | None:
    if not value:
        return None
    return _Row(label, f'<code style="{_CODE}">{_e(value)}</code>', value)


def _user_row(label: str, user_id: str, ctx: _Context, name: str = "") -> _Row | None:
    if not user_id and not name:
        return None
    name = name or ctx.username(resource_id(user_id)) or ""  # a workspaces user is users/<id>
    if not name:
        return _id_row(label, user_id)
    return _Row(label, f'<span title="{_e(user_id)}">{_e(name)}</span>', name)


def _named_id(name: str | None, ident: str) -> tuple[str, str]:
    """(html, text) of an entity: its name with the id in a tooltip, or the id where it has no name."""
    if name:
        return f'<span title="{_e(ident)}">{_e(name)}</span>', name
    return f'<code style="{_CODE}">{_e(ident)}</code>', ident


def _experiment_item(experiment_id: str, ctx: _Context, suffix: str = "") -> tuple[str, str]:
    html_text, text = _named_id(ctx.experiment_name(experiment_id), experiment_id)
    return html_text + _e(suffix), text + suffix


def _link(url: str) -> str:
    # Only web links become anchors: a server must not be able to plant a javascript: URL.
    if urlsplit(url).scheme.lower() in ("http", "https"):
        return (f'<a href="{_e(url)}" target="_blank" rel="noopener noreferrer" '
                f'style="color:var(--jp-content-link-color, inherit);text-decoration:underline">{_e(url)}</a>')
    return f'<code style="{_CODE}">{_e(url)}</code>'


def _link_row(label: str, url: str) -> _Row | None:
    return _Row(label, _link(url), url) if url else None


def _list_row(label: str, items: Iterable[tuple[str, str]]) -> _Row | None:
    """A row listing (html, text) items, one per line."""
    pairs = list(items)
    if not pairs:
        return None
    return _Row(label, "<br>".join(h for h, _ in pairs), "; ".join(t for _, t in pairs))


def _size(n: int) -> str:
    if n < 1024:
        return f"{n:,} bytes"
    value, unit = n / 1024, "KiB"
    for larger in ("MiB", "GiB", "TiB"):
        if value < 1024:
            break
        value, unit = value / 1024, larger
    return f"{value:.1f} {unit} ({n:,} bytes)"


def _enum_text(value: Any) -> str:
    return str(getattr(value, "value", value))


# -- badges ------------------------------------------------------------------------------------

_TONES = {
    "good": ("var(--jp-success-color1, #2e7d32)", "#fff"),
    "bad": ("var(--jp-error-color1, #c62828)", "#fff"),
    "busy": ("var(--jp-warn-color1, #ef6c00)", "#fff"),
    "idle": ("var(--jp-layout-color3, #757575)", "var(--jp-ui-font-color1, #fff)"),
}
_TONE_OF = {
    **dict.fromkeys(("HEALTHY", "FINISHED", "AVAILABLE", "ACTIVE", "DEPLOYED", "READY"), "good"),
    **dict.fromkeys(("UNHEALTY", "UNHEALTHY", "FAILED", "UPLOAD_FAILED", "ABORTED", "PURGE", "SUBMISSION_FAILED",
                     "TIMEOUT", "ERROR", "DISABLED"), "bad"),
    **dict.fromkeys(("PREPARING", "LAUNCHING", "PENDING", "TRAINING", "STOPPING", "BEING_UPLOADED", "TERMINATING",
                     "CREATED", "SUBMITTED", "RUNNING", "CANCELLING"), "busy"),
}
# The API spells one state UNHEALTY; people read "unhealthy".
_BADGE_LABELS = {"UNHEALTY": "unhealthy"}
# Enum prefixes of the workspaces generation's states (ENDPOINT_STATE_READY reads "ready").
_STATE_PREFIXES = ("ENDPOINT_STATE_", "MONITORING_STATE_")


def _plain_state(value: str) -> str:
    return next((value.removeprefix(p) for p in _STATE_PREFIXES if value.startswith(p)), value)


def _badge_label(value: str) -> str:
    return _BADGE_LABELS.get(value, _plain_state(value).replace("_", " ").lower())


def _badge_html(value: str) -> str:
    background, color = _TONES[_TONE_OF.get(_plain_state(value), "idle")]
    return (f'<span title="{_e(value)}" style="background:{background};color:{color};border-radius:9px;'
            f'padding:1px 8px;font-size:0.85em;font-weight:600;white-space:nowrap">{_e(_badge_label(value))}</span>')


def state_badge(state: str) -> str:
    """A state (HEALTHY, FAILED, ...) as the coloured badge cards show."""
    return _badge_html(state)


# -- card rendering ----------------------------------------------------------------------------

_FONT = "var(--jp-ui-font-family, -apple-system, BlinkMacSystemFont, 'Segoe UI', Helvetica, Arial, sans-serif)"
_MUTED = "color:var(--jp-ui-font-color2, inherit);opacity:0.85;font-size:0.9em"
_CODE = "font-family:var(--jp-code-font-family, monospace);font-size:0.9em"
_CARD = (f"font-family:{_FONT};font-size:var(--jp-ui-font-size1, 13px);color:var(--jp-ui-font-color1, inherit);"
         "background:var(--jp-layout-color1, transparent);border:1px solid var(--jp-border-color2, rgba(128,128,128,0.4));"
         "border-radius:6px;padding:8px 12px;margin:4px 0;max-width:720px;line-height:1.45")
_KIND = ("text-transform:uppercase;letter-spacing:0.05em;font-size:0.75em;font-weight:600;"
         "color:var(--jp-ui-font-color2, inherit);opacity:0.85;margin-right:6px")
_TH = ("text-align:left;vertical-align:top;font-weight:normal;padding:1px 12px 1px 0;white-space:nowrap;"
       "color:var(--jp-ui-font-color2, inherit);opacity:0.85")
_TD = "text-align:left;vertical-align:top;padding:1px 0;word-break:break-word"
# JupyterLab stripes and highlights rendered table rows; a card's rows are a form, not data.
_TR = "background:transparent"


def _render_html(card: _Card) -> str:
    head = f'<span style="{_KIND}">{_e(card.kind)}</span><strong style="font-size:1.1em">{_e(card.title)}</strong>'
    if card.badge:
        head += " " + _badge_html(card.badge)
    parts = [f'<div class="mlops-nb-card" style="{_CARD}">', f"<div>{head}</div>"]
    if card.ident:
        parts.append(f'<div style="{_MUTED}"><code style="{_CODE}">{_e(card.ident)}</code></div>')
    if card.description:
        parts.append(f'<div style="margin:4px 0;white-space:pre-wrap">{_e(card.description)}</div>')
    if card.rows:
        body = "".join(f'<tr style="{_TR}"><th style="{_TH}">{_e(r.label)}</th><td style="{_TD}">{r.html}</td></tr>'
                       for r in card.rows)
        parts.append(f'<table style="border-collapse:collapse;margin-top:4px;border:none">{body}</table>')
    parts.append("</div>")
    return "".join(parts)


def _render_text(card: _Card) -> str:
    head = f"{card.kind}: {card.title}"
    if card.badge:
        head += f" [{_badge_label(card.badge)}]"
    if card.ident:
        head += f" ({card.ident})"
    lines = [head]
    if card.description:
        lines.append("  " + " ".join(card.description.split()))
    lines += [f"  {r.label}: {r.text}" for r in card.rows]
    return "\n".join(lines)


def _card(kind: str, title: str, rows: Iterable[_Row | None], **extra: Any) -> _Card:
    return _Card(kind, title, rows=[r for r in rows if r is not None], **extra)


# -- the cards ---------------------------------------------------------------------------------


def _user(m: Message, ctx: _Context) -> _Card:
    # A workspaces user (V1User) has a login principal for a username, and a list of emails.
    emails = _get(m, "emails") or []
    name = _get(m, "username", "login_principal") or ""
    display_name = _get(m, "display_name") or ""
    active = _get(m, "active")
    return _card("User", name or display_name or _ident(m), [
        _text_row("name", display_name if name and display_name != name else ""),
        _text_row("email", _get(m, "primary_email") or ", ".join(e.address for e in emails)),
        _time_row("joined", _get(m, "created_time"), ctx),
    ], ident=_ident(m), badge="" if active is None or active else "INACTIVE")


def _project_card(m: Message, ctx: _Context, counts: Iterable[_Row | None] = (), kind: str = "Project") -> _Card:
    ident = _ident(m)
    labels = [*(_get(m, "tags") or []), *(_get(m, "labels") or [])]
    return _card(kind, _title(m), [
        _user_row("owner", _get(m, "owner_id", "creator") or "", ctx),
        *counts,
        _list_row("tags", [(_e(t), t) for t in labels]),
        _created(m, ctx),
        _modified(m, ctx),
        _time_row("archived", _get(m, "archive_time"), ctx),
        _time_row("deleted", _get(m, "delete_time"), ctx),
    ], ident=ident, description=m.description)


def _project(m: Message, ctx: _Context) -> _Card:
    return _project_card(m, ctx)


def _workspace(m: Message, ctx: _Context) -> _Card:
    return _project_card(m, ctx, kind="Workspace")


def _project_info(m: Message, ctx: _Context) -> _Card:
    shared = [(_e(u.username or u.id), u.username or u.id) for u in m.shared_user]
    return _project_card(m.project or message_class("StorageProject", generation_of(m))(), ctx, [
        _text_row("experiments", f"{m.experiment_count:,}"),
        _text_row("registered models", f"{m.registered_model_count:,}"),
        _text_row("model versions", f"{m.registered_model_version_count:,}"),
        _text_row("shares", f"{m.share_count:,}"),
        _list_row("shared with", shared),
    ])


def _experiment(m: Message, ctx: _Context, extra: Iterable[_Row | None] = ()) -> _Card:
    parameters = m.parameters
    tags = [(_e(t.display_name or t.id), t.display_name or t.id) for t in m.tag]
    return _card("Experiment", m.display_name or m.id, [
        _user_row("owner", m.owner_id, ctx),
        *extra,
        _text_row("target column", parameters.target_column if parameters else ""),
        _id_row("training dataset", parameters.training_dataset_id if parameters else ""),
        _text_row("training time", m.statistics.training_duration if m.statistics else ""),
        _list_row("tags", tags),
        _time_row("created", m.created_time, ctx),
        _time_row("modified", m.last_modified_time, ctx),
    ], ident=m.id, description=m.description, badge=_enum_text(m.status) if m.is_set("status") else "")


def _experiment_info(m: Message, ctx: _Context) -> _Card:
    info = m.model_info
    rows = []
    if info is not None:
        rows = [_text_row("registered as", info.model_name),
                _text_row("model version", info.model_version_number),
                _id_row("model id", info.model_id)]
    return _experiment(m.experiment or message_class("StorageExperiment", generation_of(m))(), ctx, rows)


def _registered_model(m: Message, ctx: _Context) -> _Card:
    return _card("Registered model", m.display_name or m.id, [
        _id_row("project", m.project_id),
        _text_row("status", m.status),
        _user_row("created by", m.created_by, ctx),
        _time_row("created", m.created_time, ctx),
        _user_row("updated by", m.updated_by, ctx),
        _time_row("updated", m.updated_time, ctx),
    ], ident=m.id, description=m.description)


def _model_version(m: Message, ctx: _Context) -> _Card:
    return _card("Model version", f"v{m.version}", [
        _id_row("registered model", m.registered_model_id),
        _id_row("experiment", m.experiment_id),
        _user_row("created by", m.created_by, ctx),
        _time_row("created", m.created_time, ctx),
        _user_row("updated by", m.updated_by, ctx),
        _time_row("updated", m.updated_time, ctx),
    ], ident=m.id, badge=_enum_text(m.status))


def _artifact(m: Message, ctx: _Context) -> _Card:
    try:
        deployable = catalogs.deployable_artifact(m.type)
        deploys_as = f"{deployable.deployable_artifact_type_name} (processor {deployable.artifact_processor_name})"
    except LookupError:
        deploys_as = ""
    return _card("Artifact", m.type or m.id, [
        _id_row("of entity", m.entity_id),
        _text_row("size", _size(m.size) if m.is_set("size") else ""),
        _text_row("mime type", m.mime_type),
        _text_row("deploys as", deploys_as),
        _text_row("MD5", base64.b64encode(m.md5_digest).decode("ascii")),
        _text_row("location", _get(m, "location")),  # the workspaces generation's artifacts have none
        *_ingestion_rows(_get(m, "model_ingestion_state")),
        _time_row("created", m.created_time, ctx),
        _time_row("uploaded", m.uploaded_time, ctx),
        _time_row("modified", m.last_modified_time, ctx),
    ], ident=m.id, badge=_enum_text(m.state) if m.is_set("state") else "")


def _ingestion_rows(state: Message | None) -> list[_Row | None]:
    """A workspaces artifact's model ingestion: its status, and its error when it failed."""
    if state is None:
        return []
    error = state.error_message
    return [_text_row("ingestion", _badge_label(_enum_text(state.status)) if state.is_set("status") else ""),
            _Row("ingestion error", f'<span style="color:var(--jp-error-color1, #c62828)">{_e(error)}</span>', error)
            if error else None]


_STORAGE_DEPLOYMENT_TYPES = {"SINGLE_MODEL": "single model", "SHADOW_TRAFFIC": "shadow", "SPLIT_TRAFFIC": "split"}


def _scoring_url(deployment_id: str, status: Message | None, ctx: _Context) -> str:
    """A legacy status carries its scoring URL; the workspaces generation's is in the deployment's metadata."""
    return _url(_get(status, "scorer"), "score") or (ctx.scoring_url(deployment_id) or "" if deployment_id else "")


def _status_of(deployment_id: str, ctx: _Context) -> tuple[str, list[_Row | None]]:
    """The state badge, how long it has been so, the scoring URL and the deployer's word on a
    deployment, if a client has seen its status. A failed deployment's message is its reason."""
    status = ctx.deployment_status(deployment_id) if deployment_id else None
    if status is None:
        url = _scoring_url(deployment_id, None, ctx)
        return "", [_link_row("scoring URL", url)] if url else []
    state = _enum_text(status.state)
    since = None
    changed = _get(status, "last_modified_time", "update_time")
    if changed is not None:
        span = _relative_time(changed, ctx.now).removesuffix(" ago")
        label = f"{_badge_label(state)} for {span}" if span != "just now" else f"{_badge_label(state)} just now"
        since = _Row("state", f"{_badge_html(state)} <span style=\"{_MUTED}\">{_e(label)}</span>", label)
    message = (_Row("reason", f'<span style="color:var(--jp-error-color1, #c62828)">{_e(status.message)}</span>',
                    status.message) if state == "FAILED" and status.message else _text_row("status", status.message))
    return state, [since, _link_row("scoring URL", _scoring_url(deployment_id, status, ctx)), message]


def _traffic_row(shares: list[tuple[str, str, float, str]]) -> _Row | None:
    """(label, experiment id, share 0..1, note) per model, drawn as bars: a split's weights, a shadow's copy."""
    if len(shares) < 2:
        return None
    bars, text = [], []
    for label, ident, share, note in shares:
        width = max(share, 0.0) * 100
        bars.append(f'<div style="display:flex;align-items:center;gap:6px;margin:1px 0">'
                    f'<div style="width:160px;background:var(--jp-layout-color3, #ddd);border-radius:3px;height:10px">'
                    f'<div style="width:{width:.0f}%;background:var(--jp-brand-color1, #1976d2);height:10px;'
                    f'border-radius:3px"></div></div><span title="{_e(ident)}">{_e(label)} {_e(note)}</span></div>')
        text.append(f"{label} {note}")
    return _Row("traffic", "".join(bars), "; ".join(text))


def _storage_deployment(m: Message, ctx: _Context) -> _Card:
    kind = _STORAGE_DEPLOYMENT_TYPES.get(_enum_text(m.type), "")
    served = [_experiment_item(m.experiment_id, ctx)] if m.experiment_id else []
    served += [_experiment_item(s.experiment_id, ctx, f" ({s.fraction:.0%})") for s in m.secondary_scorer]
    state, status_rows = _status_of(m.id, ctx)
    return _card("Deployment", kind or m.id, [
        _text_row("type", kind),
        _list_row("models", served),
        *status_rows,
        _id_row("project", m.project_id),
        _id_row("environment", m.deployment_environment_id),
        _user_row("owner", m.owner_id, ctx),
        _time_row("created", m.created_time, ctx),
        _time_row("modified", m.last_modified_time, ctx),
    ], ident=m.id, badge=state)


_RUNTIME_LABELS = {r["runtime_name"]: r["runtime_display_name"] for r in CATALOGS.runtimes}


def _runtime_name(name: str) -> tuple[str, str]:
    label = f"{_RUNTIME_LABELS[name]} ({name})" if name in _RUNTIME_LABELS else name
    return _e(label), label


def _protection(security: Message | None) -> str:
    """What scoring a deployment needs, from its security options (never their secrets): a legacy
    passphrase keeps its text in ``hash``, the workspaces one in ``passphrase``."""
    if security is None:
        return ""
    passphrase = security.passphrase
    if passphrase is not None and (_get(passphrase, "hash", "passphrase")
                                   or security.is_set("passphrase") and _get(passphrase, "hash_algorithm")):
        return "passphrase"
    if _get(security, "api_key") is not None:
        return "API key"
    token = security.token_auth
    if token is not None and _enum_text(token.authentication_protocol) in ("AUTHORIZATION_PROTOCOL_OIDC", "OIDC"):
        return "sandbox or platform access token"
    return ""


def _composition_rows(served: list[tuple[str, Any]], ctx: _Context) -> list[_Row | None]:
    """The models, runtimes and artifacts rows of (role, deployment composition) pairs, of either generation."""
    models, runtimes, artifacts = [], [], []
    for role, composition in served:
        if composition is None:
            continue
        suffix = f" ({role})" if role else ""
        models.append(_experiment_item(composition.experiment_id, ctx, suffix))
        runtime = _get(composition, "runtime_name", "runtime")
        if runtime and _runtime_name(runtime) not in runtimes:
            runtimes.append(_runtime_name(runtime))
        artifact_type = _get(composition, "deployable_artifact_type_name", "deployable_artifact_type", "artifact_type")
        if artifact_type:
            artifact_id = _get(composition, "artifact_id") or ""
            artifact = artifact_type + (f" {artifact_id}" if artifact_id else "")
            artifacts.append((f'{_e(artifact_type)} <code style="{_CODE}">{_e(artifact_id)}</code>'
                              if artifact_id else _e(artifact_type), artifact))
    return [_list_row("models", models), _list_row("runtime", runtimes), _list_row("artifact", artifacts)]


def _workspace_of(name: str) -> str:
    """``workspaces/W`` of a workspaces resource name below it."""
    parts = name.split("/")
    return "/".join(parts[:2]) if len(parts) > 2 and parts[0] == "workspaces" else ""


def _deployer_deployment(m: Message, ctx: _Context) -> _Card:
    # Both generations: DeployDeployment (single_deployment, ...) and V2Deployment (single, ...).
    single = _get(m, "single_deployment", "single")
    shadow = _get(m, "shadow_deployment", "shadow")
    split = _get(m, "split_deployment", "split")
    # (role, composition) of each model the deployment serves
    served: list[tuple[str, Any]] = []
    if single is not None:
        kind = "single model"
        served.append(("", single.deployment_composition))
    elif shadow is not None:
        kind = "shadow"
        for role, element in (("primary", shadow.primary_element), ("shadow", shadow.secondary_element)):
            if element is not None:
                served.append((role, element.deployment_composition))
    elif split is not None:
        kind = "split"
        served += [(f"weight {e.weight}", e.deployment_composition) for e in split.split_elements]
    elif _get(m, "external") is not None:
        kind = "external"
    else:
        kind = ""
    ident = _ident(m)
    owner = _get(m, "user_info")
    state, status_rows = _status_of(resource_id(ident), ctx)
    models, runtimes, artifacts = _composition_rows(served, ctx)
    securities = [_get(m, "security"), *(_get(m, "securities") or [])]
    protection = list(dict.fromkeys(p for s in securities if (p := _protection(s))))
    return _card("Deployment", _title(m), [
        _text_row("type", kind),
        models,
        _traffic_row(_shares(m, ctx)),
        runtimes,
        artifacts,
        *status_rows,
        _text_row("paused", "yes" if _get(m, "paused") else ""),
        _text_row("scoring needs", " or ".join(protection)),
        _user_row("owner", owner.owner_id if owner else _get(m, "creator") or "", ctx,
                  name=owner.owner_name if owner else ""),
        _id_row("project", _get(m, "project_id") or ""),
        _id_row("workspace", _workspace_of(_get(m, "name") or "")),
        _created(m, ctx),
        _modified(m, ctx),
    ], ident=ident, description=m.description, badge=state)


def _shares(m: Message, ctx: _Context) -> list[tuple[str, str, float, str]]:
    """Each model's share of a split's traffic, or what a shadow gets."""
    split = _get(m, "split_deployment", "split")
    shadow_deployment = _get(m, "shadow_deployment", "shadow")
    if split is not None:
        elements = split.split_elements
        total = sum(e.weight for e in elements) or 1
        return [(*_model_label(e, ctx), e.weight / total, f"{e.weight / total:.0%}") for e in elements]
    if shadow_deployment is not None:
        primary, shadow = shadow_deployment.primary_element, shadow_deployment.secondary_element
        if primary is None or shadow is None:
            return []
        return [(*_model_label(primary, ctx), 1.0, "answers every request"),
                (*_model_label(shadow, ctx), 1.0, "scores a copy of each")]
    return []


def _model_label(element: Message, ctx: _Context) -> tuple[str, str]:
    """(the name of the experiment a split or shadow element serves, or its id's start; its id)."""
    composition = element.deployment_composition
    if composition is None:
        return "?", ""
    ident = composition.experiment_id
    return ctx.experiment_name(ident) or ident[:8], ident


def _url(scorer: Message | None, endpoint: str) -> str:
    found = getattr(scorer, endpoint) if scorer is not None else None
    return found.url if found is not None else ""


def _deployment_status(m: Message, ctx: _Context) -> _Card:
    # A legacy status names its deployment by id; a V2DeploymentStatus is ``<deployment name>/status``.
    deployment_id = _get(m, "deployment_id") or resource_id(_get(m, "name"), below="status")
    shown = _get(m, "deployment_id") or (_get(m, "name") or "").removesuffix("/status")
    name = ctx.deployment_name(deployment_id) if deployment_id else None
    scorer = _get(m, "scorer")
    summary = _get(_get(m, "error_details"), "summary")
    return _card("Deployment status", name or shown, [
        _text_row("message", m.message),
        _link_row("scoring URL", _scoring_url(deployment_id, m, ctx)),
        _link_row("sample request", _url(scorer, "sample_request")),
        _link_row("capabilities", _url(scorer, "capabilities")),
        _text_row("failure", summary.primary_failure_type if summary is not None else ""),
        _text_row("last update", "rolled back" if _enum_text(_get(m, "last_update_outcome")) == "ROLLED_BACK" else ""),
        _modified(m, ctx, "updated"),
    ], badge=_enum_text(m.state), ident=shown if name else "")


def _state_rows(m: Message, ctx: _Context) -> list[_Row | None]:
    """Why a runtime or runtime image is in its state, and since when."""
    reason = _get(m, "state_reason") or ""
    return [_text_row("state reason", reason), _time_row("state since", _get(m, "state_update_time"), ctx)]


def _runtime(m: Message, ctx: _Context) -> _Card:
    return _card("Runtime", _title(m), [
        _text_row("model type", m.model_type),
        _text_row("runtime image", m.runtime_image),
        _text_row("scoring endpoint", m.scoring_endpoint),
        *_state_rows(m, ctx),
        _created(m, ctx),
        _modified(m, ctx),
    ], ident=m.name, description=m.description, badge=_enum_text(m.state) if m.is_set("state") else "")


def _runtime_image(m: Message, ctx: _Context) -> _Card:
    return _card("Runtime image", _title(m), [
        _text_row("docker image", m.docker_image),
        _text_row("version", m.current_version),
        *_state_rows(m, ctx),
        _created(m, ctx),
        _modified(m, ctx),
    ], ident=m.name, description=m.description, badge=_enum_text(m.state) if m.is_set("state") else "")


def _endpoint(m: Message, ctx: _Context) -> _Card:
    def target(name: str) -> list[tuple[str, str]]:
        return [_named_id(ctx.deployment_name(resource_id(name)), name)] if name else []

    effective = m.effective_target if m.effective_target != m.target else ""
    return _card("Endpoint", _title(m), [
        _text_row("path", m.path),
        _list_row("serves", target(m.target)),
        _list_row("serving now", target(effective)),
        _id_row("workspace", _workspace_of(m.name)),
        _created(m, ctx),
        _modified(m, ctx),
    ], ident=m.name, description=m.description, badge=_enum_text(m.state) if m.is_set("state") else "")


def _where(part: Message | None) -> tuple[str, str] | None:
    """(html, text) of a batch job's source or sink: its location and kind (its config, secure-store
    references, is left out)."""
    if part is None or not (part.location or part.spec):
        return None
    text = " ".join(x for x in (part.location, f"({part.mime_type})" if part.mime_type else "") if x)
    spec = f' <span style="{_MUTED}">{_e(part.spec)}</span>' if part.spec else ""
    return f'<code style="{_CODE}">{_e(text)}</code>{spec}', text + (f" {part.spec}" if part.spec else "")


def _batch_job(m: Message, ctx: _Context) -> _Card:
    instance = m.instance_spec
    composition = instance.deployment_composition if instance is not None else None
    stats = m.completion_stats
    error = stats.error if stats is not None else ""
    source, sink = _where(m.source), _where(m.sink)
    monitoring = _enum_text(m.monitoring_state) if m.is_set("monitoring_state") else ""
    return _card("Batch scoring job", _title(m), [
        *_composition_rows([("", composition)], ctx),
        _list_row("source", [source] if source else []),
        _list_row("sink", [sink] if sink else []),
        _text_row("rows processed", stats.processed_rows if stats is not None else ""),
        _text_row("rows in error", f"{stats.error_rows_count:,}" if stats is not None and stats.error_rows_count else ""),
        _Row("error", f'<span style="color:var(--jp-error-color1, #c62828)">{_e(error)}</span>', error) if error else None,
        _text_row("monitoring", _badge_label(monitoring) if monitoring else ""),
        _user_row("creator", m.creator, ctx),
        _created(m, ctx),
        _time_row("started", m.start_time, ctx),
        _time_row("ended", m.end_time, ctx),
        _id_row("rerun of", m.rerun_of),
    ], ident=m.name, badge=_enum_text(m.state) if m.is_set("state") else "")


_CARDS: dict[str, Callable[[Message, _Context], _Card]] = {
    "StorageUser": _user,
    "StorageProject": _project,
    "StorageProjectInfo": _project_info,
    "StorageExperiment": _experiment,
    "StorageExperimentInfo": _experiment_info,
    "StorageRegisteredModel": _registered_model,
    "StorageRegisteredModelVersion": _model_version,
    "StorageArtifact": _artifact,
    "StorageDeployment": _storage_deployment,
    "DeployDeployment": _deployer_deployment,
    "DeployDeploymentStatus": _deployment_status,
    # The workspaces generation (its storage messages have the legacy names, and the cards above)
    "V1User": _user,
    "V1Workspace": _workspace,
    "V2Deployment": _deployer_deployment,
    "V2DeploymentStatus": _deployment_status,
    "V2Endpoint": _endpoint,
    "V1Runtime": _runtime,
    "V1RuntimeImage": _runtime_image,
    "V1Job": _batch_job,
}


@cache
def _wrappers(generation: str) -> dict[str, str]:
    """Responses made of one carded entity (``StorageGetProjectResponse``, ``V2GetDeploymentResponse``) ->
    that field's name, in one generation of the API."""
    found = {}
    for name, fields in description(generation).messages.items():
        if len(fields) == 1 and not fields[0].repeated and not fields[0].map and fields[0].type in _CARDS:
            found[name] = fields[0].name
    return found


def has_card(message_name: str, generation: str = "legacy") -> bool:
    """Whether messages named ``message_name`` (of that API generation) display as cards."""
    return message_name in description(generation).messages and (
        message_name in _CARDS or message_name in _wrappers(generation))


def _build(message: Message, ctx: _Context) -> _Card | None:
    name = type(message).__name__
    wrapped = _wrappers(generation_of(message)).get(name)
    if wrapped is not None:
        inner = getattr(message, wrapped)
        return None if inner is None else _build(inner, ctx)
    render = _CARDS.get(name)
    return None if render is None else render(message, ctx)


def _context(now: datetime | None, usernames: Mapping[str, str] | None,
             statuses: Mapping[str, Message] | None, names: Mapping[str, str] | None,
             scoring_urls: Mapping[str, str] | None = None) -> _Context:
    # Given any of the mappings, a card is made from them alone (no live client is asked).
    offline = usernames is not None or statuses is not None or names is not None or scoring_urls is not None
    names_given = (names or {}).get
    return _Context(now or datetime.now(timezone.utc),
                    usernames.get if usernames is not None else known_username,
                    statuses.get if statuses is not None else known_deployment_status,
                    names_given if offline else known_experiment_name,
                    names_given if offline else known_deployment_name,
                    (scoring_urls or {}).get if offline else known_scoring_url)


# A message whose card a live display has just shown (wait_for_healthy's status): shown as the
# value of the cell that showed it, it adds nothing. A list, to hold it by identity.
_SHOWN_ABOVE: list[Message] = []


def shown_above(message: Message) -> None:
    """Displayed as the running cell's value, ``message`` shows nothing: its card is already above.
    Displayed later (the cell assigned it, and another shows it), it shows its card as usual."""
    _SHOWN_ABOVE[:] = [message]
    from IPython import get_ipython

    shell = get_ipython()
    if shell is None:
        return

    def forget(*_: Any) -> None:
        _SHOWN_ABOVE.clear()
        shell.events.unregister("post_run_cell", forget)

    shell.events.register("post_run_cell", forget)


def card_html(message: Message, *, now: datetime | None = None, usernames: Mapping[str, str] | None = None,
              statuses: Mapping[str, Message] | None = None, names: Mapping[str, str] | None = None,
              scoring_urls: Mapping[str, str] | None = None) -> str | None:
    """The card's HTML, or None for a message without a card.

    ``now`` fixes "3 days ago" (default: the current time). ``usernames`` (user id ->
    name), ``statuses`` (deployment id -> ``DeployDeploymentStatus`` or ``V2DeploymentStatus``),
    ``names`` (experiment or deployment id -> display name) and ``scoring_urls`` (deployment
    id -> URL, which the workspaces generation keeps in deployment metadata) replace what
    the live clients know. Ids of workspaces resources are the last part of their names.
    """
    if _SHOWN_ABOVE and _SHOWN_ABOVE[0] is message:
        _SHOWN_ABOVE.clear()
        return ""
    card = _build(message, _context(now, usernames, statuses, names, scoring_urls))
    return None if card is None else _render_html(card)


def card_text(message: Message, *, now: datetime | None = None, usernames: Mapping[str, str] | None = None,
              statuses: Mapping[str, Message] | None = None, names: Mapping[str, str] | None = None,
              scoring_urls: Mapping[str, str] | None = None) -> str:
    """The card as a few lines of text; ``repr(message)`` for a message without a card."""
    card = _build(message, _context(now, usernames, statuses, names, scoring_urls))
    return repr(message) if card is None else _render_text(card)


def _carded(generation: str) -> list[str]:
    """The names of the messages of a generation that have cards."""
    return [name for name in [*_CARDS, *_wrappers(generation)] if name in description(generation).messages]


for _name in _carded("legacy"):
    register_html_renderer(_name, card_html)
# Every workspaces message: its classes are built on first use, and card_html gives None for those
# without a card, as no renderer would.
register_html_renderer("*", card_html, generation="workspaces")


# -- tables ------------------------------------------------------------------------------------

# Rows of the static table shown ahead of (and instead of, where scripts do not run)
# the interactive one: enough to recognise the data, little enough to keep notebooks small.
STATIC_PREVIEW_ROWS = 20
# Rows per page of the interactive table. A table with no more rows than this has its
# search box and row count but no paging (there is nothing to page through).
PAGE_LENGTH = 10
_CELL_TEXT_LIMIT = 120

# What a person looks for first in a frame too wide to show whole, in this order; of each
# group, the first column the frame has. Runtime columns that hold a value and metadata
# columns (metadata.auc, ...) come in at their places (see _leading_columns).
_NAME = ("display_name", "username", "name")
_STATE = ("state", "status")
_STATE_MESSAGE = ("state_message", "message")
_PROJECT = ("project", "project_id")
_CREATED = ("created_time", "create_time")
_CHANGED = ("last_modified_time", "updated_time", "update_time")
_ID = ("id", "deployment_id", "name")


def _json_default(value: Any) -> Any:
    # Mappings that are no dicts (a metadata_values cell, StorageValues) as JSON objects; the rest as text.
    return dict(value) if isinstance(value, Mapping) else str(value)


def _cell_text(value: Any) -> str:
    if isinstance(value, bytes):
        text = base64.b64encode(value).decode("ascii")
    else:
        text = json.dumps(value, default=_json_default, ensure_ascii=False)
    return _shortened(text)


def _shortened(text: str) -> str:
    """At most ``_CELL_TEXT_LIMIT`` characters (a long message would make a row tens of lines tall)."""
    return text if len(text) <= _CELL_TEXT_LIMIT else text[: _CELL_TEXT_LIMIT - 1] + "…"


def _displayable(df: pd.DataFrame) -> pd.DataFrame:
    """The frame as tables show it: times as UTC text, missing values empty, nested values as short JSON."""
    out = {}
    for name, column in df.items():
        if isinstance(column.dtype, pd.CategoricalDtype) or pd.api.types.is_float_dtype(column.dtype):
            out[name] = column
            continue
        if isinstance(column.dtype, pd.DatetimeTZDtype):
            shown = column.dt.strftime("%Y-%m-%d %H:%M:%S")
        elif pd.api.types.is_timedelta64_dtype(column.dtype):
            shown = column.astype(str)
        elif column.dtype == object:
            shown = column.map(_cell_text, na_action="ignore")
        elif pd.api.types.is_string_dtype(column.dtype):
            shown = column.map(_shortened, na_action="ignore")
        else:
            shown = column
        out[name] = shown.astype(object).where(column.notna(), "")
    return pd.DataFrame(out, index=df.index)


def _holds_values(column: pd.Series) -> bool:
    return bool(column.astype(object).where(column.notna(), "").astype(str).ne("").any())


def _leading_columns(df: pd.DataFrame) -> list[Any]:
    """The columns a wide frame's display starts with: name, state, project, runtime, times, id, metadata."""
    names = [c for c in df.columns if isinstance(c, str)]

    def first(options: tuple[str, ...]) -> list[str]:
        return [c for c in options if c in names][:1]

    runtimes = [c for c in names if c.endswith(("runtime_name", "composition_runtime")) and _holds_values(df[c])]
    metadata = [c for c in names if c.startswith("metadata.")]
    # dict.fromkeys: "name" may be both the name shown and the id (a workspaces resource without a display name)
    return list(dict.fromkeys([*first(_NAME), *first(("version",)), *first(_STATE), *first(_STATE_MESSAGE),
                               *first(_PROJECT), *runtimes, *first(_CREATED), *first(_CHANGED), *first(_ID),
                               *metadata]))


def _shown_columns(df: pd.DataFrame, columns: str | Sequence[Any] | None) -> list[Any]:
    """The columns a table shows: ``"all"``, the ones named, or (None) at most settings.max_columns,
    leading with what a person looks for when the frame has more."""
    if isinstance(columns, str):
        if columns != "all":
            raise ValueError(f'columns must be "all", a list of column names or None, got {columns!r}')
        return list(df.columns)
    if columns is not None:
        missing = [c for c in columns if c not in df.columns]
        if missing:
            raise KeyError(f"the frame has no column {', '.join(map(repr, missing))}; "
                           f"its columns: {', '.join(map(str, df.columns))}")
        return list(columns)
    limit = settings.max_columns
    if not limit or len(df.columns) <= limit:
        return list(df.columns)
    leading = _leading_columns(df)
    return [*leading, *(c for c in df.columns if c not in leading)][:limit]


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'s' if count != 1 else ''}"


def _caption(df: pd.DataFrame, shown_rows: int, shown_columns: list[Any]) -> str:
    entity = df.attrs.get(FRAME_ATTR, "")
    text = f"{_plural(len(df), 'row')} × {_plural(len(df.columns), 'column')}"
    if shown_rows < len(df):
        text += f", first {shown_rows:,} shown (settings.max_rows)"
    if len(shown_columns) < len(df.columns):
        text += f", {len(shown_columns)} shown"
    if any(isinstance(df[c].dtype, pd.DatetimeTZDtype) for c in shown_columns if isinstance(df[c], pd.Series)):
        text += "; times in UTC"
    return f"{entity + ': ' if entity else ''}{text}"


def _hidden_columns_note(hidden: int) -> str:
    return (f"{_plural(hidden, 'more column')} not shown: mlops_nb.show_table(frame, columns=\"all\") shows "
            "them all, %config MLOps.max_columns = 0 (settings.max_columns = 0) shows every column from now on.")


def _breakable_header(table_html: str) -> str:
    """Let column names break after their underscores (``single_<wbr>deployment_<wbr>...``)."""
    head, separator, body = table_html.partition("</thead>")
    return head.replace("_", "_<wbr>") + separator + body


# Where a notebook is not trusted JupyterLab drops <style> elements, but keeps inline styles:
# these keep the static table left-aligned there (JupyterLab centers it and right-aligns cells).
_STATIC_TABLE_STYLE = "margin:0"
_STATIC_CELL_STYLE = "text-align:left"


def _static_table(table: pd.DataFrame, show_index: bool, note: str) -> str:
    body = table.to_html(escape=True, index=show_index, na_rep="", border=0, classes="mlops-nb-static-table")
    # pandas writes bare <th>/<td> tags (values are escaped, so none can come from a cell).
    body = (body.replace("<table ", f'<table style="{_STATIC_TABLE_STYLE}" ', 1)
            .replace('<tr style="text-align: right;">', "<tr>")
            .replace("<th>", f'<th style="{_STATIC_CELL_STYLE}">').replace("<td>", f'<td style="{_STATIC_CELL_STYLE}">'))
    return _breakable_header(body) + (f'<div class="mlops-nb-note">{_e(note)}</div>' if note else "")


# Text reads left-aligned (JupyterLab right-aligns table cells); numbers stay right-aligned.
# Cells are padded as JupyterLab's own tables are, tighter than DataTables' default.
# Long text wraps at spaces and hyphens (a word longer than its column breaks too), messages and
# descriptions in a column at least 12em wide (cut at _CELL_TEXT_LIMIT: a few lines at most); codes
# (ids, runtime names, URLs: _is_identifier) anywhere, in a column at least 9em wide; column
# names after their underscores (see _breakable_header). A table still too wide scrolls
# sideways inside its output (DataTables' layout does that) rather than running off the page.
_TABLE_CSS = """
.mlops-nb-frame{font-family:var(--jp-ui-font-family, inherit);color:var(--jp-ui-font-color1, inherit)}
.mlops-nb-frame .mlops-nb-caption,.mlops-nb-frame .mlops-nb-note{font-size:0.9em;opacity:0.8;margin:2px 0}
.mlops-nb-frame .mlops-nb-static-table{border-collapse:collapse;font-size:var(--jp-ui-font-size1, 13px);
 table-layout:auto}
.mlops-nb-frame .mlops-nb-static-table th,.mlops-nb-frame .mlops-nb-static-table td{padding:2px 8px;
 vertical-align:top;white-space:normal;overflow-wrap:break-word;
 border-bottom:1px solid var(--jp-border-color2, rgba(128,128,128,0.3))}
.mlops-nb-frame table.dataTable th,.mlops-nb-frame table.dataTable td{text-align:left;vertical-align:top;
 white-space:normal;overflow-wrap:break-word}
.mlops-nb-frame table.dataTable>thead>tr>th,.mlops-nb-frame table.dataTable>tbody>tr>td{padding:4px 6px}
.mlops-nb-frame table.dataTable td.mlops-nb-code{overflow-wrap:anywhere;min-width:9em}
.mlops-nb-frame table.dataTable td.mlops-nb-prose{min-width:12em}
.mlops-nb-frame table.dataTable th.dt-type-numeric,.mlops-nb-frame table.dataTable td.dt-type-numeric{
 text-align:right}
.mlops-nb-frame [hidden]{display:none !important}
body[data-jp-theme-light="false"] .mlops-nb-frame,body[data-vscode-theme-kind*="dark"] .mlops-nb-frame{
 --dt-row-hover:255,255,255;--dt-row-stripe:255,255,255;--dt-column-ordering:255,255,255}
""".strip()

# Reveals the interactive table once DataTables has drawn it (it adds the class
# "dataTable"); until then, and for good where scripts or the bundle are missing,
# the static table stays.
_SWAP_SCRIPT = """
(() => {
  const root = document.getElementById("%(id)s");
  if (!root) return;
  const swap = () => {
    if (!root.querySelector("table.dataTable")) return false;
    // Column names may break after an underscore (DataTables has already read them for its labels).
    for (const title of root.querySelectorAll(".mlops-nb-interactive .dt-column-title")) {
      if (title.children.length) continue;
      const words = title.textContent.split("_");
      title.replaceChildren(...words.flatMap((word, i) =>
        i < words.length - 1 ? [word + "_", document.createElement("wbr")] : [word]));
    }
    root.querySelector(".mlops-nb-static").setAttribute("hidden", "hidden");
    root.querySelector(".mlops-nb-interactive").removeAttribute("hidden");
    return true;
  };
  if (swap()) return;
  const watch = new MutationObserver(() => { if (swap()) watch.disconnect(); });
  watch.observe(root, {subtree: true, childList: true, attributes: true, attributeFilter: ["class"]});
})();
""".strip()

# Loads the DataTables bundle that ships with itables into the page, once per page: the
# first table of a page to run it does, the others find it there. Every table carries the
# bundle (gzipped), so a table works in whichever page shows it: after a reload, in a
# second tab, in a notebook reopened later, in an HTML export. It sets what itables'
# offline tables wait for (the promise of the module, and the event once it is ready).
_BUNDLE_SCRIPT = """
(() => {
  const name = %(name)s;
  if (window[name]) return;
  const unpack = async (base64) => {
    const bytes = Uint8Array.from(atob(base64), c => c.charCodeAt(0));
    return new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"))).text();
  };
  window[name] = (async () => {
    const [css, js] = await Promise.all([unpack(%(css)s), unpack(%(js)s)]);
    const style = document.createElement("style");
    style.textContent = css;
    document.head.appendChild(style);
    const url = URL.createObjectURL(new Blob([js], {type: "text/javascript"}));
    try { return await import(url); } finally { URL.revokeObjectURL(url); }
  })();
  window[name].then(() => window.dispatchEvent(new Event(%(event)s)));
})();
""".strip()


@cache
def _itables_hooks() -> tuple[str, str] | None:
    """(the window name, the ready event) itables' offline tables wait for, from two private helpers of
    ``itables.javascript`` (pyproject pins itables' major version); None, with a warning, when this
    itables lacks them, and tables are then shown static."""
    try:
        from itables.javascript import _itables_ready_event, _itables_underscore_version
    except ImportError as e:
        from importlib.metadata import version

        warnings.warn(f"itables {version('itables')} lacks what interactive tables need ({e}); tables are shown "
                      "static: install itables>=2.9,<3", RuntimeWarning, stacklevel=2)
        return None
    return _itables_underscore_version(), _itables_ready_event()


@cache
def _bundle_html(name: str, event: str) -> str:
    """The script that loads itables' DataTables bundle (about 250 kB: gzip, then base64), then sets
    ``window[name]`` and fires ``event``, which itables' offline tables wait for."""
    import gzip

    import itables

    script = Path(itables.options.dt_bundle)

    def packed(path: Path) -> str:
        # mtime=0: the same bundle gives the same bytes, so saved notebooks do not churn.
        return json.dumps(base64.b64encode(gzip.compress(path.read_bytes(), mtime=0)).decode("ascii"))

    values = {"name": json.dumps(name), "event": json.dumps(event),
              "js": packed(script), "css": packed(script.with_suffix(".css"))}
    return f"<script>{_BUNDLE_SCRIPT % values}</script>"


def _layout(rows: int) -> dict[str, str | None]:
    # Search and the row count always (the notebooks promise search); page controls only with pages.
    if rows > PAGE_LENGTH:
        return {"topStart": "pageLength", "topEnd": "search", "bottomStart": "info", "bottomEnd": "paging"}
    return {"topStart": None, "topEnd": "search", "bottomStart": "info", "bottomEnd": None}


def _is_identifier(column: Any) -> bool:
    """Whether a column holds codes (ids, runtime names, URLs) rather than words."""
    return isinstance(column, str) and (column == "id" or column.endswith(("_id", "runtime_name", "_url")))


def _interactive_table(table: pd.DataFrame, table_id: str, show_index: bool) -> str:
    import itables

    offset = 1 if show_index else 0
    codes = [i + offset for i, column in enumerate(table.columns) if _is_identifier(column)]
    prose = [i + offset for i, column in enumerate(table.columns) if column in _STATE_MESSAGE or column == "description"]
    column_classes = [{"targets": targets, "className": name}
                      for targets, name in ((codes, "mlops-nb-code"), (prose, "mlops-nb-prose")) if targets]
    return itables.to_html_datatable(
        table, table_id=table_id, connected=False, maxBytes=0, showIndex=show_index, autoWidth=False,
        display_logo_when_loading=False, warn_on_unexpected_types=False, pageLength=PAGE_LENGTH,
        # A click on a column's name sorts by it, as people expect of a table (itables' default
        # sorts only from the small arrow, keeping the name selectable).
        text_in_header_can_be_selected=False,
        layout=_layout(len(table)), classes="display",
        style="table-layout:auto;width:auto;margin:0;caption-side:bottom",
        **({"columnDefs": column_classes} if column_classes else {}),
    )


def frame_html(df: pd.DataFrame, *, columns: str | Sequence[Any] | None = None,
               include_bundle: bool = True) -> str:
    """The HTML of a list frame: an interactive table with a static fallback, or only the static table.

    ``columns``: None shows at most ``settings.max_columns`` columns (leading with name,
    state, project, runtime, times and id when there are more), ``"all"`` every column, a
    list those columns. ``include_bundle=False`` leaves out the DataTables bundle (about
    250 kB), for pages that load it otherwise.
    """
    shown = df.iloc[: settings.max_rows]
    show_index = not df.index.equals(pd.RangeIndex(len(df)))
    names = _shown_columns(df, columns)
    table = _displayable(shown[names])
    hidden = len(df.columns) - len(names)
    caption = f'<div class="mlops-nb-caption">{_e(_caption(df, len(shown), names))}</div>'
    if hidden > 0:
        caption += f'<div class="mlops-nb-note mlops-nb-hidden-columns">{_e(_hidden_columns_note(hidden))}</div>'
    style = f"<style>{_TABLE_CSS}</style>"
    hooks = _itables_hooks() if settings.interactive_tables else None
    if hooks is None:
        return f'<div class="mlops-nb-frame">{style}{caption}{_static_table(table, show_index, "")}</div>'
    frame_id = f"mlops-nb-{uuid.uuid4().hex}"
    preview = table.iloc[:STATIC_PREVIEW_ROWS]
    rest = len(table) - len(preview)
    note = f"{rest:,} more rows in the interactive table (it needs JavaScript: trust the notebook)" if rest else ""
    return (
        f'<div class="mlops-nb-frame" id="{frame_id}">{style}{caption}'
        f'<div class="mlops-nb-static">{_static_table(preview, show_index, note)}</div>'
        f'<div class="mlops-nb-interactive" hidden="hidden">{_bundle_html(*hooks) if include_bundle else ""}'
        f"{_interactive_table(table, frame_id + '-table', show_index)}</div>"
        f"<script>{_SWAP_SCRIPT % {'id': frame_id}}</script></div>"
    )


def show_table(frame: pd.DataFrame, columns: str | Sequence[Any] | None = "all") -> None:
    """Display ``frame`` as list tables show: by default with every column (``columns="all"``).

    ``columns`` may also name the columns to show, in order, or be None for the usual
    choice (at most ``settings.max_columns``). Any DataFrame works, not only list results.
    """
    from IPython.display import HTML, display

    display(HTML(frame_html(frame, columns=columns)))


# -- IPython -----------------------------------------------------------------------------------


# A log reads down the page: whole messages, left-aligned, wrapped (JupyterLab's own table style
# right-aligns cells, and pandas cuts text at 50 characters), in a monospace font that keeps a
# traceback's indentation; times and sources stay on one line.
_LOG_CSS = """
.mlops-nb-log table.mlops-nb-log-table{border-collapse:collapse;font-size:var(--jp-code-font-size, 13px);
 table-layout:auto;width:100%}
.mlops-nb-log table.mlops-nb-log-table td,.mlops-nb-log table.mlops-nb-log-table th{text-align:left;
 vertical-align:top;padding:1px 8px 1px 0;border:none;max-width:none}
.mlops-nb-log table.mlops-nb-log-table td.mlops-nb-log-meta{white-space:nowrap;opacity:0.75}
.mlops-nb-log table.mlops-nb-log-table td.mlops-nb-log-message{white-space:pre-wrap;overflow-wrap:anywhere;
 font-family:var(--jp-code-font-family, monospace);width:100%}
""".strip()


def log_html(logs: pd.DataFrame) -> str:
    """A log frame (``time``, ``source``, ``message``) as a log: the last ``settings.max_rows`` lines, newest last."""
    shown = logs.tail(settings.max_rows) if settings.max_rows else logs
    rows = []
    for when, source, message in shown[["time", "source", "message"]].itertuples(index=False):
        time_text = "" if pd.isna(when) else when.strftime("%Y-%m-%d %H:%M:%S")
        rows.append(f'<tr><td class="mlops-nb-log-meta">{_e(time_text)}</td>'
                    f'<td class="mlops-nb-log-meta">{_e("" if pd.isna(source) else source)}</td>'
                    f'<td class="mlops-nb-log-message">{_e("" if pd.isna(message) else message)}</td></tr>')
    earlier = len(logs) - len(shown)
    caption = f"{_plural(len(shown), 'log line')}, oldest first, times in UTC" + (
        f"; {_plural(earlier, 'earlier line')} not shown (settings.max_rows)" if earlier else "")
    return (f'<div class="mlops-nb-log"><style>{_LOG_CSS}</style>'
            f'<div style="font-size:0.9em;opacity:0.8;margin:2px 0">{_e(caption)}</div>'
            f'<table class="mlops-nb-log-table"><tbody>{"".join(rows)}</tbody></table></div>')


def _frame_printer(previous: Callable[[Any], Any] | None) -> Callable[[pd.DataFrame], str | None]:
    def html_of_frame(df: pd.DataFrame) -> str | None:
        if LOG_ATTR in df.attrs and {"time", "source", "message"} <= set(df.columns):
            return log_html(df)
        if FRAME_ATTR in df.attrs:
            return frame_html(df)
        return previous(df) if previous is not None else df._repr_html_()

    html_of_frame.mlops_nb = True  # type: ignore[attr-defined]
    return html_of_frame


def _text_printer(message: Message, printer: Any, cycle: bool) -> None:
    printer.text(card_text(message))


def install_ipython_formatters(shell: Any = None) -> bool:
    """Show list frames (and frames derived from them) as tables and cards as text in ``shell``.

    Runs on import inside IPython; returns False where there is no IPython shell.
    """
    if shell is None:
        # Without IPython loaded there is no shell, and loading it would cost the import its speed.
        ipython = sys.modules.get("IPython")
        shell = ipython.get_ipython() if ipython is not None else None
    if shell is None:
        return False
    formatters = shell.display_formatter.formatters
    html_formatter = formatters["text/html"]
    current = html_formatter.type_printers.get(pd.DataFrame)
    if not getattr(current, "mlops_nb", False):
        html_formatter.for_type(pd.DataFrame, _frame_printer(current))
    for name in _carded("legacy"):
        formatters["text/plain"].for_type(message_class(name), _text_printer)
    # By module and name: the workspaces classes need not be built for their printers to wait for them.
    for name in _carded("workspaces"):
        formatters["text/plain"].for_type_by_name(GENERATION_MODULES["workspaces"], name, _text_printer)
    return True


register_frame_renderer(frame_html)
install_ipython_formatters()
