"""UserService: who am I, users by id or name, lists, batch get, create."""

from __future__ import annotations

import json
from typing import Any

from mlops_nb.sandbox.rpc import (
    Call,
    ListQuery,
    already_exists,
    handles,
    invalid_argument,
    list_page,
    new_id,
    not_found,
    now,
    page_response,
)

MIGRATIONS: list[tuple[str, str]] = []

USERS = ListQuery(kind="user", message="StorageUser")


def find_user(call: Call, user_id: str) -> dict[str, Any]:
    user = call.store.get("user", user_id)
    if user is None:
        raise not_found("user", user_id)
    return user


def user_by_username(call: Call, username: str) -> dict[str, Any] | None:
    with call.store.reading() as db:
        row = db.execute(
            "SELECT data FROM entity WHERE kind = 'user' AND json_extract(data, '$.username') = ?", (username,)
        ).fetchone()
    return json.loads(row["data"]) if row else None


@handles("storage.user.who_am_i")
def who_am_i(call: Call, request: None) -> dict[str, Any]:
    return {"user": call.user}


@handles("storage.user.get_user")
def get_user(call: Call, request: Any) -> dict[str, Any]:
    if not request.id:
        raise invalid_argument("id is required")
    return {"user": find_user(call, request.id)}


@handles("storage.user.get_user_by_username")
def get_user_by_username(call: Call, request: Any) -> dict[str, Any]:
    if not request.username:
        raise invalid_argument("username is required")
    user = user_by_username(call, request.username)
    if user is None:
        raise not_found("user", request.username)
    return {"user": user}


@handles("storage.user.list_users")
def list_users(call: Call, request: Any) -> dict[str, Any]:
    items, token = list_page(call, USERS, request)
    return page_response("user", items, token)


@handles("storage.user.batch_get_users")
def batch_get_users(call: Call, request: Any) -> dict[str, Any]:
    ids = list(dict.fromkeys(request.i_ds))
    if len(ids) > 1000:
        raise invalid_argument(f"at most 1000 ids per batch, got {len(ids)}")
    # Unknown ids are left out, as the real service does for a batch read.
    users = [u for u in (call.store.get("user", i) for i in ids) if u is not None]
    return {"users": users}


@handles("storage.user.create_user")
def create_user(call: Call, request: Any) -> dict[str, Any]:
    user = request.user
    if user is None or not user.username:
        raise invalid_argument("user.username is required")
    if user_by_username(call, user.username) is not None:
        raise already_exists(f"a user named {user.username!r} exists already")
    data = {"id": new_id(), "username": user.username, "primaryEmail": user.primary_email,
            "createdTime": now(), "idpId": user.idp_id}
    call.store.put("user", {k: v for k, v in data.items() if v})
    return {"user": data}
