"""What an API call or a loan ended as: the small checks many tests under tests/api make.

A plain module (imported as `api_outcomes`, as test modules import one another here), not conftest: conftest is
pytest's to load, and importing it by name would load a second copy.
"""

from __future__ import annotations

import pytest

from api.client import ApiError


def api_error(call, *args, **kwargs) -> ApiError:
    """The ApiError `call(*args, **kwargs)` raises; the test fails if it raises none."""
    with pytest.raises(ApiError) as caught:
        call(*args, **kwargs)
    return caught.value


def call_status(call) -> tuple[int, str | None]:
    """`call()`'s HTTP status and error code: (200, None) when it succeeds (for races where either may happen)."""
    try:
        call()
    except ApiError as exc:
        return exc.status, exc.code
    return 200, None


def loan_status(stack, loan_id: int) -> int:
    """The loan's status as the LoanBook holds it (the on-chain enum's number)."""
    return stack.book.functions.loanOf(loan_id).call()[2]
