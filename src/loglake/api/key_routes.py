"""The admin routes of the API keys: list, create, revoke."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Annotated

import msgspec

from loglake.api.http import ApiError, Request, json_struct, quoted
from loglake.api.routes import Result, bad_parameter, json_body, refuse_parameters
from loglake.keys import (
    MAX_RATE_BURST,
    MAX_RATE_LIMIT,
    MIN_RATE_LIMIT,
    KeyNameTaken,
    KeyStoreBusy,
    KeyStoreError,
    LastAdminKey,
    NoSuchKey,
    scope_set,
)
from loglake.recent_params import given

if TYPE_CHECKING:
    from loglake.api.app import LoglakeApp


async def list_keys(app: LoglakeApp, request: Request) -> Result:
    refuse_parameters(request, "GET /admin/keys", ("all",))
    include_revoked = given(request.query, "all") or "false"
    if include_revoked not in _BOOLEANS:
        raise bad_parameter("all", f"must be true (include revoked keys) or false, not {quoted(include_revoked)}")
    keys = await app.run_read(app.keystore.list, _BOOLEANS[include_revoked])
    return Result(200, {"keys": [k.as_dict() for k in keys]})


_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


class KeySpec(msgspec.Struct, forbid_unknown_fields=True):
    """The body of POST /admin/keys; the key store checks the name and the scopes' values."""

    name: str
    scopes: Annotated[list[str], msgspec.Meta(min_length=1)] = msgspec.field(default_factory=lambda: ["ingest"])
    sigv4: bool = False
    rate_limit: Annotated[float, msgspec.Meta(ge=MIN_RATE_LIMIT, le=MAX_RATE_LIMIT)] | None = None
    rate_burst: Annotated[int, msgspec.Meta(ge=1, le=MAX_RATE_BURST)] | None = None


_KEY_EXAMPLE = '{"name": "ci", "scopes": ["ingest", "read"], "sigv4": false}'


async def create_key(app: LoglakeApp, request: Request) -> Result:
    refuse_parameters(request, "POST /admin/keys")
    spec = json_struct(json_body(app, request, _KEY_EXAMPLE), KeySpec, _KEY_EXAMPLE, "invalid_key_spec")
    try:
        create = functools.partial(
            app.keystore.create,
            spec.name,
            scope_set(spec.scopes),
            sigv4=spec.sigv4,
            rate_limit=spec.rate_limit,
            rate_burst=spec.rate_burst,
        )
        new = await app.run_read(create)  # an fsync'd write: off the event loop
    except KeyStoreBusy as e:
        raise _keys_busy(e) from None
    except KeyNameTaken as e:
        raise ApiError(409, "key_exists", str(e)) from None
    except KeyStoreError as e:
        raise ApiError(400, "invalid_key_spec", str(e)) from None
    body = new.key.as_dict() | {"secret": new.secret}
    if new.access_key_id:
        body["access_key_id"] = new.access_key_id
    return Result(201, body)


async def revoke_key(app: LoglakeApp, request: Request, name: str) -> Result:
    refuse_parameters(request, "DELETE /admin/keys/{name}")
    try:
        await app.run_read(app.keystore.revoke, name)  # an fsync'd write: off the event loop
    except KeyStoreBusy as e:
        raise _keys_busy(e) from None
    except NoSuchKey as e:
        raise ApiError(404, "not_found", f"{e}; GET /admin/keys lists them") from None
    except LastAdminKey as e:
        message = f"{e} (or revoke it from the CLI: loglake keys revoke NAME --force)"
        raise ApiError(409, "last_admin_key", message) from None
    return Result(200, {"revoked": name})


def _keys_busy(error: KeyStoreBusy) -> ApiError:
    # Another process (`loglake keys create` on the data dir) held the write lock past the busy timeout.
    return ApiError(503, "busy", str(error), headers=[(b"retry-after", b"1")])
