"""What the foreign protocols share: naming a persona by another client's id, and the user a
connection speaks for (through the one resolver in server/auth.py)."""

from __future__ import annotations

from server.auth import Authenticator, AuthError, Principal, valid_user_id
from server.services import Services


def persona_for(services: Services, *ids: str | None) -> str | None:
    """The first id that names one of our personas, directly or through PERSONA_ALIASES;
    None when none does (the session then keeps its persona, or a new one gets the user's
    default, else DEFAULT_PERSONA)."""
    aliases = services.settings.persona_alias_map
    for candidate in ids:
        if not candidate:
            continue
        pid = aliases.get(candidate, candidate)
        if services.personas.get(pid) is not None:
            return pid
    return None


def local_mode(services: Services) -> bool:
    return not services.settings.auth_configured


async def claimed_user(auth: Authenticator, token: str | None, user_id: str | None) -> Principal:
    """The user a client speaks for. With auth configured the token decides and a
    ``user_id`` naming anybody else is refused; in local mode ``user_id`` names the local
    user (as the token does on /v1/ws). Raises AuthError (AuthUnavailable: key set down)."""
    if auth.local:
        return Principal(valid_user_id(user_id or "local", "user_id"))
    principal = await auth.authenticate(token)
    if user_id and user_id != principal.user_id:
        raise AuthError("user_id does not match the user of this token.")
    return principal
