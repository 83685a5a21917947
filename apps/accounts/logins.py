"""Logins on record and the lockout after repeated failures (django-axes).

Every login is an audit event (``apps.audit.services.login_record``), recorded explicitly where it
happens: the admin's login page (``KubeDoorAdminSite.login`` → ``admin_login_record``, local and LDAP
users alike), the API token endpoint (``TokenObtainView``), and an SSO callback (calling
``login_record`` itself). Not through Django's login signals: ``force_login`` and sessions made by
code would be recorded as logins too.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.utils.translation import gettext as _

from apps.audit.services import Actor, audit_event_record, login_record

logger = logging.getLogger(__name__)

# Short names of the authentication backends, as login events name them.
BACKEND_NAMES = {
    "django.contrib.auth.backends.ModelBackend": "local",
    "apps.accounts.ldap.RoleLDAPBackend": "ldap",
}
LOCKOUT_BACKEND = "axes.backends.AxesStandaloneBackend"
SCOPE_BACKEND = "apps.accounts.scopes.ScopeBackend"  # checks no password: permissions only


def backend_name(dotted: str) -> str:
    if dotted in BACKEND_NAMES:
        return BACKEND_NAMES[dotted]
    return "oidc" if "oidc" in dotted.lower() else dotted.rsplit(".", 1)[-1]


def _password_backends() -> str:
    """The backends a failed login was tried against (``ldap,local``): Django does not say which refused."""
    skipped = (LOCKOUT_BACKEND, SCOPE_BACKEND)
    return ",".join(backend_name(b) for b in settings.AUTHENTICATION_BACKENDS if b not in skipped)


def login_failure_record(*, request: HttpRequest, username: str) -> None:
    """A refused login with the user name tried; locked out when django-axes refused it before any backend."""
    locked = bool(getattr(request, "axes_locked_out", False))
    login_record(
        request=request,
        backend=_password_backends(),
        username=username,
        reason="locked out" if locked else "wrong user name or password",
    )


def admin_login_record(request: HttpRequest) -> None:
    """After the admin's login view answered a POST: the user it logged in, or the failure."""
    if request.method != "POST":
        return
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        backend = backend_name(request.session.get(BACKEND_SESSION_KEY, "") or "")
        login_record(request=request, backend=backend, username="", user=user)
    else:
        login_failure_record(request=request, username=str(request.POST.get("username", "")))


def lockout_message() -> str:
    minutes = settings.AXES_COOLOFF_TIME.total_seconds() / 60
    return _(
        "Too many failed logins: this account or address is locked for %(minutes)s minutes. "
        "Try again later, or ask an administrator to unlock it."
    ) % {"minutes": f"{minutes:g}"}


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict[str, Any] | None = None
) -> HttpResponse:
    """django-axes' ``AXES_LOCKOUT_CALLABLE``: 429 with a JSON message for the API, the login page's
    message for a person."""
    message = lockout_message()
    if request.path.startswith("/api/"):
        return JsonResponse({"status": 429, "code": "locked_out", "detail": message}, status=429)
    return TemplateResponse(
        request, "accounts/locked_out.html", {"title": _("Log in"), "message": message}, status=429
    ).render()


@transaction.atomic
def login_lockouts_clear(*, actor: Actor, attempts: Any) -> int:
    """Unlock: remove the failed-attempt records of ``attempts`` (axes ``AccessAttempt`` rows); audited."""
    unlocked = [{"username": a.username, "ip_address": a.ip_address} for a in attempts]
    count = len(unlocked)
    attempts.model.objects.filter(pk__in=[a.pk for a in attempts]).delete()
    for item in unlocked:
        audit_event_record(actor=actor, action="login.unlock", name=item["username"] or "", after=item)
    logger.info("unlocked %d login lockouts by %s", count, actor.name)
    return count
