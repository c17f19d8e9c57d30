"""Who the console lets in: the token check for scripts, and the browser's login sessions (issue #22).

    token_matches(header, token)   `Authorization: Bearer <token>` or `Basic` (any user, the token as password)
    start(redis, prefix, life_s)   a login: a new random id (secrets.token_urlsafe, 256 bits), kept in Redis
    active(redis, prefix, id)      the gate's question on every page: is this id a live session?
    end(redis, prefix, id)         logout (and a second login in the same browser): the session is deleted

A session lives in Redis at `{KEY_PREFIX}console:session:{sha256(id)}` with a fixed life, 12 h from login by
default (`ConsoleOptions.session_seconds`), then the operator logs in again. Fixed, not sliding: a copied
cookie's use is bounded however busy the page, and a page view costs one EXISTS, no write. Redis stores only
the id's hash, so someone reading Redis cannot replay a cookie; and since the lookup is by that hash, how
long it takes says nothing about the id (the token, a secret we hold, is compared with hmac.compare_digest).
Any cookie that is not the shape of one of our ids (a non-ASCII byte, a stale HMAC of the old scheme) is
simply not a session: the gate sends it to the login page without asking Redis.

Why not Litestar's ServerSideSessionConfig with a RedisStore: its middleware reuses whatever id the browser
brings as the new session's id (session fixation unless every login regenerates it by hand), writes the store
on every response, and deletes a store key on every request without a session (each script's Bearer call);
and a Redis error raised in middleware would need an app-wide exception handler to become a 503. These four
functions do the job with one Redis command each, and the gate decides the answer to an outage itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time

from redis.asyncio import Redis

COOKIE = "wavix_console"
LIFE_S = 12 * 3600
ID_BYTES = 32
_ID = re.compile(r"[A-Za-z0-9_-]{43}")  # token_urlsafe(32): 32 bytes in unpadded base64url


def token_matches(authorization: str, token: str) -> bool:
    """The Authorization header carries the console token, as a Bearer token or as Basic's password."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return hmac.compare_digest(value.strip().encode(), token.encode())
    if scheme.lower() == "basic":
        try:
            password = base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except ValueError:
            return False
        return hmac.compare_digest(password.encode(), token.encode())
    return False


def csrf_secret(token: str) -> str:
    """The CSRF middleware's signing secret, derived from the console token (never the token itself)."""
    return hmac.new(token.encode(), b"wavix-events console csrf", hashlib.sha256).hexdigest()


def key(prefix: str, session_id: str) -> str:
    return f"{prefix}console:session:{hashlib.sha256(session_id.encode()).hexdigest()}"


def well_formed(session_id: str) -> bool:
    return _ID.fullmatch(session_id) is not None


async def start(redis: Redis, prefix: str, life_s: int = LIFE_S) -> str:
    """A new session for `life_s` seconds; returns its id, for the cookie only. The value is the login time (ms)."""
    session_id = secrets.token_urlsafe(ID_BYTES)
    await redis.set(key(prefix, session_id), time.time_ns() // 1_000_000, ex=life_s, nx=True)
    return session_id


async def active(redis: Redis, prefix: str, session_id: str) -> bool:
    """Whether `session_id` is a live session: well formed, and not expired nor ended in Redis."""
    return well_formed(session_id) and bool(await redis.exists(key(prefix, session_id)))


async def end(redis: Redis, prefix: str, session_id: str) -> None:
    """Deletes the session; an id that is none of ours, or already gone, is nothing to do."""
    if well_formed(session_id):
        await redis.delete(key(prefix, session_id))
