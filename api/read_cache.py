"""Auditor read bodies kept as JSON bytes while the read model (and, where it matters, the chain) stands still.

The read model changes only when the indexer commits, and the indexer commits its cursor with every
change (ledger.indexer). So a body is reused while the cursor (number and hash of the last indexed
block, for every indexer) is the same, and the portfolio report's while the chain's head is the same
too (days past due age with chain time). Both are read again for every request: never a stale answer,
whichever process the indexer runs in and however many API processes there are, since each keeps its
own bodies and checks them against the shared store. On SQLite the cursor read is one indexed query on
a connection of its own (WAL: a reader never waits for the indexer); elsewhere, and for the chain's
head, concurrent requests share one read that began after each of them arrived, so a read is never
older than the request it answers. A change written into the read model other than by the indexer (by
hand, in the database) is not noticed until the cursor moves: the read model is the indexer's alone.

Authorisation is unchanged: the route's dependencies (the role check) run for every request before
the cache is asked. A path and query string the route has already answered are answered again before
FastAPI routes them (`CachedReadMiddleware`: routing and parameter parsing cost a cached answer more than
anything else), after the same role check made the same way (the roles of the route's `auth.require`,
the token through `auth.decode_token`, the roles `auth.principal` holds); anything else, a route with any
other dependency, a caller whose roles must be read again, an error, goes through FastAPI as before.
Only bodies that depend on nothing but the parameters may be cached: not on who asks (auditor routes
show everything to every reader) nor on the clock.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from fastapi.datastructures import DefaultPlaceholder
from fastapi.responses import Response
from fastapi.routing import serialize_response
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker
from web3 import HTTPProvider

from api.auth import Principal, decode_token
from api.context import Context
from api.errors import ApiError
from ledger.store.models.chain import IndexerCursor

MAX_BODIES = 2_048
_NOT_PARAMETERS = (Request, Principal, Context)  # what a route is given besides its parameters


class SharedRead:
    """`read()` (a coroutine function) shared by concurrent callers, each given a read that began after it
    asked: callers join the next read to begin, and one runs at a time. Reads begin at least `spacing`
    seconds apart, so under load one read serves a batch of requests and costs each a fraction of
    itself (it costs them a little waiting, never staleness)."""

    def __init__(self, read: Callable[[], Awaitable[Any]], spacing: float = 0.0):
        self._read, self.spacing = read, spacing
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next: asyncio.Future | None = None  # the read not yet begun, which callers join
        self._runner: asyncio.Task | None = None
        self._started = 0.0

    async def __call__(self) -> Any:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (tests start several): the old futures are dead
            self._loop, self._next, self._runner = loop, None, None
        if self._next is None:
            self._next = loop.create_future()
        if self._runner is None:
            self._runner = loop.create_task(self._run())
        return await asyncio.shield(self._next)

    async def _run(self) -> None:
        try:
            while self._next is not None:
                wait = self._started + self.spacing - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                future, self._next = self._next, None  # who asks from now on waits for the read after
                self._started = time.monotonic()
                try:
                    future.set_result(await self._read())
                except Exception as exc:  # noqa: BLE001 - handed to every caller waiting for this read
                    future.set_exception(exc)
        finally:
            self._runner = None


class IndexVersion:
    """Where every indexer's cursor stands: ((name, block number, block hash), ...)."""

    _QUERY = "SELECT name, block_number, block_hash FROM indexer_cursor ORDER BY name"

    def __init__(self, sessions: sessionmaker):
        self.sessions = sessions
        engine = sessions.kw["bind"]
        database = engine.url.database
        self._sqlite_path = database if (engine.dialect.name == "sqlite" and database
                                         and database != ":memory:" and not engine.url.query) else None
        self._connection: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._shared = SharedRead(lambda: run_in_threadpool(self._read_store))

    async def current(self) -> tuple:
        if self._sqlite_path is not None:
            return self._read_sqlite()
        return await self._shared()

    def _read_sqlite(self) -> tuple:
        # Microseconds: one row per indexer, in the event loop (a thread would cost more than the query).
        # Autocommit, so no read transaction stays open between calls.
        with self._lock:
            if self._connection is None:
                self._connection = sqlite3.connect(self._sqlite_path, timeout=5, isolation_level=None,
                                                   check_same_thread=False)
            return tuple(self._connection.execute(self._QUERY).fetchall())

    def _read_store(self) -> tuple:
        with self.sessions() as session:
            rows = session.execute(select(IndexerCursor.name, IndexerCursor.block_number, IndexerCursor.block_hash)
                                   .order_by(IndexerCursor.name))
            return tuple(tuple(row) for row in rows)


class ChainHead:
    """The latest block's (hash, time): what the portfolio report's days past due are computed at.

    Read with one raw JSON-RPC call in the event loop through aiohttp (web3's own asynchronous HTTP
    client): about 0.2 ms of CPU, where web3's `get_block` costs 2 ms and, in the thread pool, holds the
    GIL against the event loop. A node behind another provider, or a call that fails, goes through web3
    in the thread pool, so errors are web3's as before (a node that is down is a 503)."""

    SPACING = 0.005
    _BODY = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_getBlockByNumber",
                        "params": ["latest", False]}).encode()

    def __init__(self, context):
        self.context = context
        provider = context.w3.provider
        self._url = provider.endpoint_uri if type(provider) is HTTPProvider else None
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self.read = SharedRead(self._read, spacing=self.SPACING)

    async def _read(self) -> tuple[str, int]:
        if self._url is not None:
            try:
                return await self._read_raw()
            except (aiohttp.ClientError, TimeoutError, KeyError, TypeError, ValueError):
                pass  # web3 below answers or raises what the routes always raised
        return await run_in_threadpool(self._read_web3)

    async def _read_raw(self) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._session_loop is not loop:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.context.settings.node_timeout))
            self._session_loop = loop
        async with self._session.post(self._url, data=self._BODY,
                                      headers={"content-type": "application/json"}) as response:
            response.raise_for_status()
            block = (await response.json(content_type=None))["result"]
        return block["hash"].removeprefix("0x").lower(), int(block["timestamp"], 16)

    def _read_web3(self) -> tuple[str, int]:
        block = self.context.w3.eth.get_block("latest")
        return bytes(block["hash"]).hex(), block["timestamp"]

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


class ReadCache:
    """Response bodies by (route, parameters, read-model version[, chain head]), for one API process."""

    def __init__(self, context, max_bodies: int = MAX_BODIES):
        self.index = IndexVersion(context.sessions)
        self.head = ChainHead(context)
        self.max_bodies = max_bodies
        self._bodies: OrderedDict[tuple, bytes] = OrderedDict()
        self._version: tuple | None = None
        self.making: dict[tuple, asyncio.Future] = {}  # bodies being made, so concurrent misses make one
        self.hits = self.misses = 0
        # (path, query string) -> how a request for it was answered by the route (see `answer_known`).
        self.known: dict[tuple[str, bytes], _Known] = {}

    async def version(self, at_chain_head: bool) -> tuple:
        index = await self.index.current()
        if index != self._version:  # the read model moved: nothing kept can be asked for again
            self._bodies.clear()
            self._version = index
        return (index, await self.head.read()) if at_chain_head else (index,)

    def get(self, key: tuple) -> bytes | None:
        body = self._bodies.get(key)
        if body is None:
            self.misses += 1
        else:
            self.hits += 1
            self._bodies.move_to_end(key)
        return body

    def put(self, key: tuple, body: bytes) -> None:
        self._bodies[key] = body
        if len(self._bodies) > self.max_bodies:
            self._bodies.popitem(last=False)

    def clear(self) -> None:
        self._bodies.clear()

    def remember(self, scope: dict, known: _Known) -> None:
        if len(self.known) >= self.max_bodies:
            self.known.clear()
        self.known[(scope["path"], scope["query_string"])] = known

    async def answer_known(self, scope: dict, context, roles) -> tuple[Any, bytes] | None:
        """(route, body) for a GET the route has already answered for these exact path and query, when the
        caller passes the route's role check and the body for the current version is kept; else None,
        and FastAPI handles the request as usual (errors included). Skips routing and parameter parsing,
        which cost a cached answer more than everything else: the parameters are what the route parsed
        from the same text, and the role check is the route's own (`auth.require`), made the same way."""
        known = self.known.get((scope["path"], scope["query_string"]))
        if known is None:
            return None
        who = _bearer_principal(scope, context, roles)
        if who is None or not who.has(*known.roles):
            return None
        version = await self.version(known.at_chain_head)
        body = self._bodies.get((*known.key[:2], version, known.key[2]))
        if body is None:
            return None
        self.hits += 1
        self._bodies.move_to_end((*known.key[:2], version, known.key[2]))
        return known.route, body

    async def close(self) -> None:
        await self.head.close()


def cached_read(*, at_chain_head: bool = False):
    """Decorates a (sync) auditor route so that a body already made for the same parameters and the same
    read-model version (and chain head, with `at_chain_head`) is sent as stored bytes; otherwise the route
    runs in the thread pool as before and its answer is serialised exactly as FastAPI would, then kept.
    The route must take `request: Request`, and its body must not depend on who asks (see the module)."""

    def decorate(handler: Callable[..., Any]):
        if "request" not in inspect.signature(handler).parameters:
            raise TypeError(f"{handler.__qualname__}: a cached_read route takes `request: Request`")

        @functools.wraps(handler)  # FastAPI reads the parameters through __wrapped__
        async def route(**kwargs: Any) -> Any:
            request = next(v for v in kwargs.values() if isinstance(v, Request))
            cache: ReadCache = request.app.state.read_cache
            version = await cache.version(at_chain_head)
            parameters = tuple(sorted((k, v) for k, v in kwargs.items() if not isinstance(v, _NOT_PARAMETERS)))
            key = (handler.__module__, handler.__qualname__, version, parameters)
            body = cache.get(key)
            if body is None and key in cache.making:
                # The same body for the same version is being made: wait for it. It began before this
                # request perhaps, but read the store while the cursor stood where it stands now.
                body = await asyncio.shield(cache.making[key])
            if body is None:
                making = cache.making[key] = asyncio.get_running_loop().create_future()
                try:
                    answer = await run_in_threadpool(handler, **kwargs)
                    body = await _serialized(request, answer)
                    if body is None:
                        return answer  # not the plain JSON case: FastAPI answers as usual, nothing kept
                    if await cache.version(at_chain_head) == version:
                        cache.put(key, body)  # nothing moved while it was made: it is exactly the version's
                finally:
                    # Waiters take the body; on an error (a 404 too) or another kind of answer they run the
                    # route themselves, so each gets its own answer as without the cache.
                    if cache.making.get(key) is making:
                        del cache.making[key]
                    making.set_result(body)
            known = _known_for(request, (handler.__module__, handler.__qualname__, parameters), at_chain_head)
            if known is not None:
                cache.remember(request.scope, known)
            return Response(content=body, media_type="application/json")

        return route

    return decorate


async def _serialized(request: Request, answer: Any) -> bytes | None:
    """The bytes FastAPI sends for `answer` on this route (its response model, dumped by pydantic)."""
    route = request.scope.get("route")
    field = getattr(route, "response_field", None)
    if (isinstance(answer, Response) or field is None or not isinstance(route.response_class, DefaultPlaceholder)
            or route.status_code not in (None, 200)):
        return None
    return await serialize_response(
        field=field, response_content=answer, include=route.response_model_include,
        exclude=route.response_model_exclude, by_alias=route.response_model_by_alias,
        exclude_unset=route.response_model_exclude_unset, exclude_defaults=route.response_model_exclude_defaults,
        exclude_none=route.response_model_exclude_none, is_coroutine=True, dump_json=True)


@dataclass(frozen=True)
class _Known:
    route: Any
    key: tuple  # (module, route name, parameters)
    roles: tuple[str, ...]
    at_chain_head: bool


def _known_for(request: Request, key: tuple, at_chain_head: bool) -> _Known | None:
    """What answering this path and query again without FastAPI needs, if the route allows it: a GET whose
    only dependencies are the role check `auth.require(...)` and ones marked `pure` (nothing that checks or changes
    anything could be skipped by mistake)."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if request.method != "GET" or dependant is None or getattr(route, "dependencies", None):
        return None
    calls = [d.call for d in dependant.dependencies if not getattr(d.call, "pure", False)]
    if len(calls) != 1 or not hasattr(calls[0], "roles"):
        return None
    return _Known(route, key, calls[0].roles, at_chain_head)


def _bearer_principal(scope: dict, context, roles) -> Principal | None:
    """The caller as `auth.principal` sees it (HTTPBearer's parsing, the same token check, roles already
    resolved); None whenever that would not be a plain success, so FastAPI answers instead."""
    authorization = next((v for k, v in scope["headers"] if k == b"authorization"), None)
    if authorization is None:
        return None
    scheme, credentials = get_authorization_scheme_param(authorization.decode("latin-1"))
    if scheme.lower() != "bearer" or not credentials:
        return None
    try:
        address = decode_token(context, credentials)
    except ApiError:
        return None
    held = roles.cached(address)
    if held is None:
        return None
    roles.refresh_ahead(address)
    return Principal(address, held)


class CachedReadMiddleware:
    """Answers a GET that `cached_read` routes have answered before, from `ReadCache.answer_known`, inside
    the observability middleware (request id, metrics by route, log line as for any request)."""

    def __init__(self, app, cache: ReadCache, context, roles):
        self.app, self.cache, self.context, self.roles = app, cache, context, roles

    async def __call__(self, scope, receive, send) -> None:
        if (scope["type"] == "http" and scope["method"] == "GET"
                and (scope["path"], scope["query_string"]) in self.cache.known):  # no coroutine for the rest
            known = await self.cache.answer_known(scope, self.context, self.roles)
            if known is not None:
                scope["route"] = known[0]  # the template the metrics are labelled with
                await Response(content=known[1], media_type="application/json")(scope, receive, send)
                return
        await self.app(scope, receive, send)
