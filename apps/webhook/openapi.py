"""The admission endpoint in the OpenAPI schema.

``POST /mutate/<cluster>`` is routed only by the webhook process, so the web process's schema
generator would never see it: :func:`webhook_endpoints_add` (a drf-spectacular preprocessing hook,
``SPECTACULAR_SETTINGS["PREPROCESSING_HOOKS"]``) adds the DRF views of the webhook process's URL map
to the documented endpoints. The serializers here only describe the documents; the view hands the
raw body to ``services.admission_review_handle`` and never runs them.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import extend_schema
from rest_framework import serializers

WEBHOOK_URLCONF = "apps.webhook.process_urls"


class KubernetesGroupVersionKindSerializer(serializers.Serializer):
    group = serializers.CharField(allow_blank=True)
    version = serializers.CharField()
    kind = serializers.CharField()


class KubernetesGroupVersionResourceSerializer(serializers.Serializer):
    group = serializers.CharField(allow_blank=True)
    version = serializers.CharField()
    resource = serializers.CharField()


class KubernetesUserInfoSerializer(serializers.Serializer):
    username = serializers.CharField()
    uid = serializers.CharField(required=False)
    groups = serializers.ListField(child=serializers.CharField(), required=False)


class AdmissionAttributesSerializer(serializers.Serializer):
    uid = serializers.CharField(help_text="Echoed in the answer.")
    kind = KubernetesGroupVersionKindSerializer(help_text="apps/v1 Deployment, or autoscaling/v1 Scale.")
    resource = KubernetesGroupVersionResourceSerializer()
    subResource = serializers.CharField(required=False, allow_blank=True, help_text="`scale` for deployments/scale.")  # noqa: N815
    operation = serializers.CharField(help_text="CREATE or UPDATE (anything else is allowed unchanged).")
    namespace = serializers.CharField(allow_blank=True)
    name = serializers.CharField(allow_blank=True)
    userInfo = KubernetesUserInfoSerializer(required=False)  # noqa: N815
    object = serializers.JSONField(help_text="The Deployment (or Scale) as it would be stored.")
    oldObject = serializers.JSONField(required=False, allow_null=True, help_text="UPDATE: the stored object.")  # noqa: N815
    dryRun = serializers.BooleanField(required=False, help_text="Same decision; audited as dry_run, never notified.")  # noqa: N815


class AdmissionReviewSerializer(serializers.Serializer):
    """What the API server sends: ``admission.k8s.io/v1`` (or ``v1beta1``) ``AdmissionReview``."""

    apiVersion = serializers.CharField(help_text="admission.k8s.io/v1 or admission.k8s.io/v1beta1")  # noqa: N815
    kind = serializers.CharField(help_text="AdmissionReview")
    request = AdmissionAttributesSerializer()


class AdmissionStatusSerializer(serializers.Serializer):
    code = serializers.IntegerField(help_text="403 for an unmanaged Deployment, 503 when control data is unavailable.")
    message = serializers.CharField()


class AdmissionResponseSerializer(serializers.Serializer):
    uid = serializers.CharField(help_text="The request's uid.")
    allowed = serializers.BooleanField()
    status = AdmissionStatusSerializer(required=False, help_text="Only on a denial.")
    warnings = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Each change, or what enforce mode would do."
    )
    patchType = serializers.CharField(required=False, help_text="JSONPatch, when patching.")  # noqa: N815
    patch = serializers.CharField(required=False, help_text="The base64 JSONPatch.")


class AdmissionReviewAnswerSerializer(serializers.Serializer):
    """The answer: an ``AdmissionReview`` in the request's ``apiVersion`` with ``response`` set."""

    apiVersion = serializers.CharField(help_text="The request's apiVersion.")  # noqa: N815
    kind = serializers.CharField(help_text="AdmissionReview")
    response = AdmissionResponseSerializer()


class AdmissionErrorSerializer(serializers.Serializer):
    status = serializers.IntegerField()
    detail = serializers.CharField()


admission_review_schema = extend_schema(
    tags=["admission webhook"],
    summary="Answer an AdmissionReview (called by the Kubernetes API server)",
    description=(
        "Served only by the webhook process (`apps.webhook.wsgi`, port 8443 over TLS), never by the web UI's "
        "process. Register `/mutate/<cluster>` (one cluster configured: `/mutate` works too). The decision "
        "comes from an in-memory snapshot of the control table; a denial is HTTP 200 with `allowed: false`."
    ),
    request={"application/json": AdmissionReviewSerializer},
    responses={
        200: AdmissionReviewAnswerSerializer,
        400: AdmissionErrorSerializer,
        405: AdmissionErrorSerializer,
        413: AdmissionErrorSerializer,
        500: AdmissionErrorSerializer,
    },
    auth=[],
)


class AdmissionReviewSchema(AutoSchema):
    """One view serves ``/mutate`` and ``/mutate/{cluster}``: give each path its own operation id."""

    def get_operation_id(self) -> str:
        return "admission_review_cluster" if "{cluster}" in self.path else "admission_review"


def webhook_endpoints_add(endpoints: list[Any], **kwargs: Any) -> list[Any]:
    """Preprocessing hook: the DRF endpoints of the webhook process join those of the schema's URL map."""
    from drf_spectacular.generators import EndpointEnumerator

    known = {(path, method) for path, _regex, method, _callback in endpoints}
    # _get_api_endpoints, not get_api_endpoints: the public one would run this hook again.
    extra = EndpointEnumerator(urlconf=WEBHOOK_URLCONF)._get_api_endpoints(None, "")
    return endpoints + [endpoint for endpoint in extra if (endpoint[0], endpoint[2]) not in known]
