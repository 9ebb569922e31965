"""Request ids, one structured log line per request, and Prometheus metrics.

The request id comes from the client's X-Request-ID when it sends a sane one, else a fresh one; it is
echoed in the response, written in the log line and in the action log entry of any change it made.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.datastructures import MutableHeaders
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.indexer_status import IndexerStatus

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
log = logging.getLogger("loanledger.api.requests")
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def current_request_id() -> str:
    return request_id_var.get()


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("loanledger_http_requests_total", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("loanledger_http_request_seconds", "HTTP request latency by route",
                                 ["method", "route"], registry=self.registry,
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
        self._children: dict[tuple[str, str, str], tuple] = {}
        self.transactions = Counter("loanledger_relayed_transactions_total", "Transactions the API sent, by action",
                                    ["action"], registry=self.registry)
        # The indexer's figures, read from the store at each scrape (the indexer is a process of its own).
        self.poison_events = Gauge("loanledger_indexer_poison_events",
                                   "Events the indexer set aside because their projection raised (alert above 0)",
                                   registry=self.registry)
        self.last_poll = Gauge("loanledger_indexer_last_poll_timestamp_seconds",
                               "When an indexer last finished a round (its heartbeat), unix seconds; 0: never",
                               registry=self.registry)
        self.notices_set_aside = Gauge("loanledger_notices_set_aside",
                                       "SMS notices to borrowers no retry will deliver: an operator must act (alert "
                                       "above 0; GET /v1/operator/notices?status=set_aside)", registry=self.registry)

    def indexer_status(self, status: IndexerStatus) -> None:
        self.poison_events.set(status.poison_events)
        self.last_poll.set(status.polled_at or 0)

    def observe(self, method: str, route: str, status: str, seconds: float) -> None:
        """One request: its count and latency, by the labelled series kept per (method, route, status)."""
        children = self._children.get((method, route, status))
        if children is None:  # labels() validates and locks each time: done once per series
            children = self._children[(method, route, status)] = (
                self.requests.labels(method, route, status), self.latency.labels(method, route))
        children[0].inc()
        children[1].observe(seconds)

    def exposition(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def route_template(scope: Scope) -> str:
    """The template (/v1/loans/{loan_id}), not the path: one time series per route, not per loan.

    Read after routing from the route the router chose (`scope["route"]`) instead of matching every
    route again; a route chosen only for its path (a 405) counts as unmatched, as a full match is needed."""
    route = scope.get("route")
    if route is None:
        return "unmatched"
    methods = getattr(route, "methods", None)
    if methods is not None:  # the router matched the path; a full match needs the method too
        return route.path if scope["method"] in methods else "unmatched"
    return getattr(route, "path", scope["path"]) if route.matches(scope)[0] is Match.FULL else "unmatched"


class ObservabilityMiddleware:
    """Request id, metrics and the log line, as a pure ASGI middleware: Starlette's `@app.middleware("http")`
    (BaseHTTPMiddleware) runs the app in another task and wraps the response in a stream, which cost more
    than a small route itself."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        request_id = given if _SANE_ID.match(given) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", ()))
                for key, _ in headers:
                    if key == b"x-request-id":  # replaced, as the old middleware did
                        MutableHeaders(scope=message)["x-request-id"] = request_id
                        break
                else:
                    headers.append((b"x-request-id", request_id.encode("latin-1")))
                    message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            method = scope["method"]
            self.metrics.observe(method, route, str(status), elapsed)
            if log.isEnabledFor(logging.INFO):  # the JSON is built only when someone reads it
                log.info(json.dumps({"request_id": request_id, "method": method, "route": route,
                                     "status": status, "ms": round(elapsed * 1000, 2)}))
            request_id_var.reset(token)


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return ""


def install(app: FastAPI, metrics: Metrics) -> None:
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
