"""Typed API errors. They carry the service's code and message, never a token."""

from __future__ import annotations


class ApiError(Exception):
    """Base of every error an API client raises."""

    def __init__(
        self,
        service: str,
        detail: str,
        *,
        status: int | None = None,
        code: int | str | None = None,
    ) -> None:
        self.service = service
        self.detail = detail
        self.status = status
        self.code = code
        super().__init__(f"{service}: {detail} (status={status}, code={code})")


class ApiUnavailable(ApiError):
    """Network failure, timeout or 5xx. `uncertain`: the request may have taken effect."""

    def __init__(
        self, service: str, detail: str, *, status: int | None = None, uncertain: bool = False
    ) -> None:
        super().__init__(service, detail, status=status)
        self.uncertain = uncertain


class ApiRateLimited(ApiError):
    def __init__(self, service: str, retry_after: float) -> None:
        super().__init__(service, f"rate limited, retry after {retry_after:.0f}s", status=429)
        self.retry_after = retry_after


class ApiAuthError(ApiError):
    """The token is not accepted: unknown, deleted, switched off, or the account is blocked."""


class ApiPermissionError(ApiError):
    """The token is valid but lacks the permission for this call."""


class ApiNotFound(ApiError):
    pass


class ApiRejected(ApiError):
    """The request was refused for a business rule or bad input (400/422)."""


class ApiBadResponse(ApiError):
    """The answer does not match the documented shape."""
