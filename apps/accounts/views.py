"""Plain views of the accounts app (outside the admin's model pages): the language preference, the API
token endpoint and the API token of a session (SSO users have no password)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from rest_framework import exceptions
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.logins import backend_name, login_failure_record
from apps.accounts.preferences import SESSION_KEY, user_language_set
from apps.audit.services import login_record


class TokenObtainView(ObtainAuthToken):
    """``POST /api/v1/auth/token/``: DRF's token endpoint, with the login on record and under lockout.

    The credentials are checked against Django's own request (not DRF's wrapper), so django-axes marks a
    locked-out request where its middleware looks and answers 429 with a JSON message. Both outcomes
    are audited.
    """

    def post(self, request: Request, *args: object, **kwargs: object) -> Response:
        serializer = self.serializer_class(data=request.data, context={"request": request._request})
        if not serializer.is_valid():
            data = request.data if isinstance(request.data, dict) else {}
            login_failure_record(request=request._request, username=str(data.get("username", "")))
            raise exceptions.ValidationError(serializer.errors)
        user = serializer.validated_data["user"]
        token, _created = Token.objects.get_or_create(user=user)
        login_record(
            request=request._request, backend=backend_name(getattr(user, "backend", "")), username="", user=user
        )
        return Response({"token": token.key})


@require_POST
@login_required
def language_set(request: HttpRequest) -> HttpResponse:
    """Store the user's UI language ("" follows the browser) and go back to the page they were on."""
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = "/admin/"
    try:
        request.session[SESSION_KEY] = user_language_set(user=request.user, language=request.POST.get("language", ""))
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return HttpResponseRedirect(target)
    response = HttpResponseRedirect(target)
    response.delete_cookie("django_language")
    messages.success(request, _("Language saved."))
    return response


@require_POST
@login_required
def api_token_issue(request: HttpRequest) -> HttpResponse:
    """The signed-in user's API token (created once), for users without a password: SSO users.

    ``/api/v1/auth/token/`` takes a username and password; a user who signs in through the OIDC
    provider has none, so the token is issued to the session instead (POST, CSRF-checked).
    """
    token, created = Token.objects.get_or_create(user=request.user)  # type: ignore[misc]  # login_required
    return JsonResponse({"token": token.key, "created": created})
