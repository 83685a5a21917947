"""One error format for the whole API.

Every error body is ``{"status": <code>, "code": <machine code>, "detail": <message>}``; a
400 adds ``"errors": {<field>: [<message>, ...]}`` naming each bad field (``non_field_errors``
for whole-object problems). Django's own ``ValidationError`` and ``PermissionDenied`` raised
by services map to 400 and 403 so the rules written once in services read the same here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils.translation import gettext as _
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler


def editable_fields_check(data: Mapping[str, Any], editable: Iterable[str]) -> None:
    """Refuse, field by field, an update that names fields outside ``editable`` (services' update functions)."""
    unknown = set(data) - set(editable)
    if unknown:
        raise DjangoValidationError({field: _("This field cannot be changed.") for field in sorted(unknown)})


def _django_validation_errors(exc: DjangoValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return {
            ("non_field_errors" if k == "__all__" else k): [str(m) for e in v for m in e.messages]
            for k, v in exc.error_dict.items()
        }
    return {"non_field_errors": [str(m) for m in exc.messages]}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(_django_validation_errors(exc))
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()

    response = exception_handler(exc, context)
    if response is None:
        return None

    body: dict[str, Any] = {"status": response.status_code}
    if isinstance(exc, exceptions.ValidationError):
        detail = exc.detail
        errors = detail if isinstance(detail, dict) else {"non_field_errors": detail}
        body.update(code="invalid", detail=str(_("Invalid input.")), errors=errors)
    elif isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        body.update(code=codes if isinstance(codes, str) else "error", detail=str(exc.detail))
    else:  # pragma: no cover - exception_handler only handles APIException subclasses
        body.update(code="error", detail=str(exc))
    response.data = body
    if response.status_code == status.HTTP_401_UNAUTHORIZED and "WWW-Authenticate" not in response:
        response["WWW-Authenticate"] = "Token"
    return response
