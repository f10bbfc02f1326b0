"""Overload answered as overload: a request that waited the whole ``DB_POOL_TIMEOUT`` for a
database connection gets 503 with ``Retry-After`` (the participant pages retry such answers:
autosave and telemetry keep their data and send it again), not a 500 and a stack trace."""

from __future__ import annotations

from django.db import OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.deprecation import MiddlewareMixin
from psycopg_pool import PoolTimeout

RETRY_AFTER_SECONDS = 5


def _pool_exhausted(exc: Exception) -> bool:
    return isinstance(exc, PoolTimeout) or (
        isinstance(exc, OperationalError) and isinstance(exc.__cause__, PoolTimeout)
    )


class BusyMiddleware(MiddlewareMixin):
    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not _pool_exhausted(exception):
            return None
        message = "The server is busy. Your work is kept; it will be sent again in a moment."
        response: HttpResponse
        if "/api/" in request.path:
            response = JsonResponse({"error": "busy", "message": message}, status=503)
        else:
            response = HttpResponse(message, status=503, content_type="text/plain")
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
