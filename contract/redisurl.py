"""Where Redis is: the one reader of REDIS_URL's forms, and the one maker of Redis clients from it.

    redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]          rediss:// with TLS     unix:///PATH.sock?db=N
    redis+sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB][?sentinel_password=...]
    rediss+sentinel://...                               TLS to the Sentinels and to the data nodes

For a Sentinel URL the listed hosts are Sentinels; the password is the data nodes' (Sentinels usually have
none; `sentinel_password` when they do). Every client asks the Sentinels for the current primary whenever
it connects, so a failover is followed without a restart:
- redis-py's clients (`client`, `sync_client`, `arq_pool`) through redis-py's SentinelConnectionPool, which
  also drops a connection that a demoted primary answers READONLY;
- the batching client of the hot paths (contract/redisbatch.py) through `connector`, which asks the
  Sentinels for the primary, dials it, and refuses it unless its ROLE says `master` (a Sentinel that has not
  yet seen the failover, or an old primary back from the dead, answers as a replica).
Sentinel itself is redis-py's; what is ours is the URL form (the one kombu/Celery and most clients read) and
the choice of client per form. Every Sentinel is asked with a short timeout (SENTINEL_TIMEOUT_S), so one cut
off from the network costs that long, not a TCP timeout.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast, overload
from urllib.parse import parse_qs, unquote, urlsplit

import redis
import redis.sentinel
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection, Connection, SSLConnection, parse_url
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

PLAIN = ("redis", "rediss", "unix")
SENTINEL = ("redis+sentinel", "rediss+sentinel")
SENTINEL_TIMEOUT_S = 0.5  # one Sentinel's answer, or its connection; the next one is asked after it
DEFAULT_SENTINEL_PORT = 26379

R = TypeVar("R", bound=Redis)
Connector = Callable[[], Awaitable[AbstractConnection]]


class RedisUrlError(ValueError):
    """REDIS_URL (or a destination's URL) cannot be read; the message says what is wrong in one line."""


@dataclass(frozen=True)
class SentinelTarget:
    """A Sentinel URL, read: where to ask, for which primary, and how to talk to it."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None
    ssl: bool = False

    def node_options(self, **extra: Any) -> dict[str, Any]:
        """Connection options of the data nodes (the primary)."""
        return {"db": self.db, "username": self.username, "password": self.password, **extra}

    def sentinel_options(self, timeout: float = SENTINEL_TIMEOUT_S) -> dict[str, Any]:
        options: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout,
                                   "password": self.sentinel_password}
        return {**options, "ssl": True} if self.ssl else options


def scheme(url: str) -> str:
    return url.partition("://")[0].lower()


def sentinel_target(url: str) -> SentinelTarget | None:
    """The Sentinel URL read, or None for a plain one; RedisUrlError when it is neither."""
    kind = scheme(url)
    if kind in PLAIN:
        _check_plain(url)
        return None
    if kind not in SENTINEL:
        raise RedisUrlError(f"must start with {', '.join(f'{s}://' for s in PLAIN + SENTINEL)}")
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise RedisUrlError("a Sentinel URL names its primary: redis+sentinel://HOST:PORT[,HOST:PORT]/MASTER_NAME[/DB]")
    if len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise RedisUrlError(f"after the primary's name only a database number may follow, not {parts.path!r}")
    query = parse_qs(parts.query)
    return SentinelTarget(
        sentinels=tuple(_address(h) for h in hosts.split(",")), master=unquote(path[0]),
        db=int(path[1]) if len(path) == 2 else 0, username=unquote(username) or None,
        password=unquote(password) or None,
        sentinel_password=query["sentinel_password"][0] if "sentinel_password" in query else None,
        ssl=kind == "rediss+sentinel",
    )


def check(url: str) -> None:
    """Raises RedisUrlError unless `url` is one of the forms above."""
    sentinel_target(url)


@overload
def client(url: str, *, redis_class: type[R], **options: Any) -> R: ...
@overload
def client(url: str, **options: Any) -> Redis: ...


def client(url: str, *, redis_class: type[Redis] = Redis, **options: Any) -> Redis:
    """An asyncio client (redis-py) for `url`; `options` are redis-py's (timeouts, max_connections...)."""
    target = sentinel_target(url)
    if target is None:
        return cast(Redis, redis_class.from_url(url, **options))
    manager = Sentinel(list(target.sentinels), sentinel_kwargs=target.sentinel_options(),  # type: ignore[no-untyped-call]
                       ssl=target.ssl)
    primary = cast(Redis, manager.master_for(target.master, redis_class=redis_class, **target.node_options(**options)))
    primary.sentinel_manager = manager  # type: ignore[attr-defined]  # closed with it: `close`
    return primary


async def close(client: Redis) -> None:
    """Closes a client made by `client`, and its connections to the Sentinels when it has them."""
    await client.aclose()
    for sentinel in getattr(getattr(client, "sentinel_manager", None), "sentinels", ()):
        await sentinel.aclose()


def sync_client(url: str, **options: Any) -> redis.Redis:
    """A blocking client (the tests' bookkeeping, scripts); the same forms."""
    target = sentinel_target(url)
    if target is None:
        return redis.Redis.from_url(url, **options)
    manager = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call]
        list(target.sentinels), sentinel_kwargs=target.sentinel_options(), ssl=target.ssl)
    return cast(redis.Redis, manager.master_for(target.master, **target.node_options(**options)))  # type: ignore[no-untyped-call]


def connector(url: str, *, connect_timeout: float) -> Connector:
    """What the batching client calls for each new connection: one connected to the primary, or RedisError."""
    target = sentinel_target(url)
    if target is None:
        options: dict[str, Any] = dict(parse_url(url))
        kind: type[AbstractConnection] = options.pop("connection_class", Connection)
        options.update(socket_connect_timeout=connect_timeout, socket_timeout=None, lib_name=None, lib_version=None)

        async def plain() -> AbstractConnection:
            conn = kind(**options)
            await conn.connect()  # type: ignore[no-untyped-call]
            return conn
        return plain
    manager = Sentinel(list(target.sentinels), sentinel_kwargs=target.sentinel_options())  # type: ignore[no-untyped-call]
    node = target.node_options(socket_connect_timeout=connect_timeout, socket_timeout=None, lib_name=None,
                               lib_version=None)
    kind = SSLConnection if target.ssl else Connection

    async def primary() -> AbstractConnection:
        host, port = await manager.discover_master(target.master)  # MasterNotFoundError is a ConnectionError
        conn = kind(host=host, port=port, **node)
        await conn.connect()  # type: ignore[no-untyped-call]
        try:
            await conn.send_command("ROLE")
            role = await conn.read_response()
        except (TimeoutError, RedisError, OSError):
            await conn.disconnect(nowait=True)
            raise
        if not role or _text(role[0]) != "master":
            await conn.disconnect(nowait=True)
            raise RedisConnectionError(f"{host}:{port} is not the primary of {target.master!r} (yet)")
        return conn
    return primary


def arq_settings(url: str) -> Any:
    """arq's RedisSettings for `url` (used where arq makes its own pool: `create_pool` in scripts)."""
    from arq.connections import RedisSettings

    target = sentinel_target(url)
    if target is None:
        return RedisSettings.from_dsn(url)
    return RedisSettings(host=list(target.sentinels), sentinel=True, sentinel_master=target.master, database=target.db,
                         username=target.username, password=target.password, ssl=target.ssl)


def describe(url: str) -> str:
    """`url` without its password, for logs and error lines."""
    kind, _, rest = url.partition("://")
    userinfo, at, hosts = rest.partition("@")
    if not at:
        return url
    user = userinfo.partition(":")[0]
    return f"{kind}://{user + ':***' if user else ':***'}@{hosts}"


def _address(text: str) -> tuple[str, int]:
    host, port = text.strip(), ""
    if host.startswith("["):  # [::1]:26379
        host, _, port = host[1:].partition("]")
        port = port.removeprefix(":")
    elif host.count(":") == 1:
        host, _, port = host.partition(":")
    if not host:
        raise RedisUrlError(f"a Sentinel address has no host: {text!r}")
    try:
        number = int(port) if port else DEFAULT_SENTINEL_PORT
    except ValueError as e:
        raise RedisUrlError(f"a Sentinel's port is not a number: {text!r}") from e
    if not 0 < number < 65536:
        raise RedisUrlError(f"a Sentinel's port is out of range: {text!r}")
    return host, number


def _check_plain(url: str) -> None:
    try:
        _ = urlsplit(url).port  # raises on a port that is not a number or out of range
    except ValueError as e:
        raise RedisUrlError(f"not a valid URL: {e}") from e


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
