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

from fastapi import FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.routing import Match

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
        self.transactions = Counter("loanledger_relayed_transactions_total", "Transactions the API sent, by action",
                                    ["action"], registry=self.registry)

    def exposition(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


def _route_template(app: FastAPI, request: Request) -> str:
    # The template (/v1/loans/{loan_id}), not the path: one time series per route, not per loan.
    for route in app.router.routes:
        match, _ = route.matches(request.scope)
        if match == Match.FULL:
            return getattr(route, "path", request.url.path)
    return "unmatched"


def install(app: FastAPI, metrics: Metrics) -> None:
    @app.middleware("http")
    async def _observe(request: Request, call_next):
        given = request.headers.get("x-request-id", "")
        request_id = given if _SANE_ID.match(given) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers["x-request-id"] = request_id
            return response
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(app, request)
            metrics.requests.labels(request.method, route, str(status)).inc()
            metrics.latency.labels(request.method, route).observe(elapsed)
            log.info(json.dumps({"request_id": request_id, "method": request.method, "route": route,
                                 "status": status, "ms": round(elapsed * 1000, 2)}))
            request_id_var.reset(token)
