"""Credit data sources: a bureau behind one interface (HTTP client, or a local stand-in for development)."""

from oracle.bureau.source import (
    BureauError,
    BureauReport,
    BureauUnavailable,
    CreditBureau,
    HttpBureau,
    LocalBureau,
    SubjectNotFound,
)

__all__ = ["BureauError", "BureauReport", "BureauUnavailable", "CreditBureau", "HttpBureau", "LocalBureau",
           "SubjectNotFound"]
