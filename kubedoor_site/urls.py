"""URL map of the web process: admin UI, API and health probes.

The admission endpoint (``/mutate…``) is not here: only the webhook process routes it
(apps/webhook/process_urls.py), so the web UI's port never answers the API server.
"""

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path
from django.views.generic import RedirectView
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.accounts.oidc import sso_callback, sso_login
from apps.accounts.views import TokenObtainView, api_token_issue, language_set
from kubedoor_site import health

api_v1: list[URLPattern | URLResolver] = [
    path("auth/token/", TokenObtainView.as_view(), name="api-token"),
    path("", include("apps.control.urls")),
    path("", include("apps.metrics.urls")),
    path("", include("apps.audit.urls")),
    path("", include("apps.webhook.api_urls")),
]

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("api/v1/", include((api_v1, "api"), namespace="api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("preferences/language/", language_set, name="language-set"),
    path("preferences/api-token/", api_token_issue, name="api-token-issue"),
    # Single sign-on (404 unless OIDC_* is configured).
    path("oidc/authenticate/", sso_login, name="oidc-login"),
    path("oidc/callback/", sso_callback, name="oidc-callback"),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("admin/", admin.site.urls),
    # The control table is the home page.
    path("", RedirectView.as_view(pattern_name="admin:control_microservice_changelist"), name="home"),
]
