"""Rate limits (the `limits` library, moving windows): on sign-in and on one-time codes, per client, phone and
address, and on loan applications per borrower (its limit is a setting, so it is passed in, not in RULES).

Memory storage by default (one API process); a shared storage URI (redis://...) when several run. Every refusal
is a 429 with a Retry-After header: the seconds until the window's oldest hit expires.
"""

from __future__ import annotations

import time

from fastapi import Request
from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from api.errors import ApiError

RULES = {
    "auth_nonce": parse("120/minute"),   # per client address: a shared NAT is many phones
    "auth_login": parse("120/minute"),
    "otp_send_phone": parse("6/10 minutes"),     # codes to one phone number (a KYC submission sends two)
    "otp_send_address": parse("8/10 minutes"),   # codes asked by one wallet
    "otp_verify": parse("10/10 minutes"),        # guesses by one wallet, over all its codes
}


class RateLimiter:
    def __init__(self, storage_uri: str = "memory://"):
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))

    def hit(self, rule: str, key: str, item: RateLimitItem | None = None, *, code: str = "rate_limited",
            what: str = "requests") -> None:
        """Counts one hit of `rule` (RULES', or `item` when given) for `key`; 429 `code` once over the limit."""
        item = item or RULES[rule]
        if not self.limiter.hit(item, rule, key):
            reset = self.limiter.get_window_stats(item, rule, key).reset_time
            wait = max(1, int(reset - time.time()) + 1)  # rounded up: a retry at Retry-After is let through
            raise ApiError(429, code, f"too many {what} (at most {item}); try again in {wait} s",
                           {"retry-after": str(wait)})


def limit(request: Request, rule: str, key: str) -> None:
    request.app.state.limiter.hit(rule, key)
