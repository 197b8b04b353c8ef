"""Who is calling. With AUTH_TOKENS set, a token maps to a user id; without it (local
desktop mode) the token is the user's name and no token means the user "local"."""

from __future__ import annotations

import re

from fastapi import HTTPException, Request

from server.config import Settings

_USER_ID = re.compile(r"^[\w.@-]{1,64}$")


class AuthError(Exception):
    pass


def resolve_user(settings: Settings, token: str | None) -> str:
    tokens = settings.token_map
    if tokens is None:
        user = token or "local"
        if not _USER_ID.match(user):
            raise AuthError("In local mode the token is a user name: 1-64 letters, digits, . @ _ -")
        return user
    if not token or token not in tokens:
        raise AuthError("Missing or unknown token.")
    return tokens[token]


def token_from_request(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.query_params.get("token") or None


def current_user(request: Request) -> str:
    """FastAPI dependency: the authenticated user id, or 401."""
    try:
        return resolve_user(request.app.state.services.settings, token_from_request(request))
    except AuthError as e:
        raise HTTPException(status_code=401, detail=str(e)) from None
