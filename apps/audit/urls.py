"""API routes of the audit app, mounted under /api/v1/."""

from rest_framework.routers import SimpleRouter

from apps.audit import api

router = SimpleRouter()
router.register("audit-events", api.AuditEventViewSet, basename="audit-event")

urlpatterns = router.urls
