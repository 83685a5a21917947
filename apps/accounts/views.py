"""Plain views of the accounts app (outside the admin's model pages): the language preference, the API token."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from rest_framework.authtoken.models import Token

from apps.accounts.preferences import SESSION_KEY, user_language_set


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
