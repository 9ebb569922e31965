"""What the routes depend on, as `Annotated` types: the context, the signed-in principal and the role checks.

A route names what it needs in its signature (`context: ContextDep, who: Operator`) instead of reaching
into `request.app.state` or spelling `Depends(require(...))` itself, so the role a route admits is read
in one place. Each role check is built once here: FastAPI then resolves it once per request even when
several dependencies share it, and the route-role matrix test reads its `roles`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.auth import Principal, RoleResolver, principal, require
from api.context import Context
from api.observability import Metrics
from api.otp import OtpService
from api.ratelimit import RateLimiter

READ_ALL = ("auditor", "operator", "admin")  # read every loan and borrower; auditors change nothing
BORROWERS = ("borrower", "applicant")  # signed-in wallets that act on their own behalf


def get_context(request: Request) -> Context:
    return request.app.state.context


get_context.pure = True  # no check and no side effect: a cached read answered before routing may skip it


def get_roles(request: Request) -> RoleResolver:
    return request.app.state.roles


def get_otp(request: Request) -> OtpService:
    return request.app.state.otp


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


def get_limiter(request: Request) -> RateLimiter:
    return request.app.state.limiter


ContextDep = Annotated[Context, Depends(get_context)]
RolesDep = Annotated[RoleResolver, Depends(get_roles)]
OtpDep = Annotated[OtpService, Depends(get_otp)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
LimiterDep = Annotated[RateLimiter, Depends(get_limiter)]

# Any signed-in wallet, whatever its roles.
CurrentPrincipal = Annotated[Principal, Depends(principal)]

# Role checks: each admits a principal holding any of the roles it names.
Auditor = Annotated[Principal, Depends(require(*READ_ALL))]  # auditors, operators and admins read everything
Operator = Annotated[Principal, Depends(require("operator"))]
Admin = Annotated[Principal, Depends(require("admin"))]
Staff = Annotated[Principal, Depends(require("admin", "operator"))]
PolicyReader = Annotated[Principal, Depends(require("operator", "admin", "auditor"))]
Pauser = Annotated[Principal, Depends(require("pauser"))]
DecisionMaker = Annotated[Principal, Depends(require("operator", "admin", "pauser"))]  # signs decisions
RegisteredBorrower = Annotated[Principal, Depends(require("borrower"))]  # in the registry
BorrowerOrApplicant = Annotated[Principal, Depends(require(*BORROWERS))]  # signed in, KYC'd or not
# Borrowers see their own loans, the read-all roles every loan (api.views.visible_loan decides which).
LoanReader = Annotated[Principal, Depends(require(*BORROWERS, *READ_ALL))]
