"""REST endpoints of the webhook app: admission state and mode per cluster, and the decision preview."""

from __future__ import annotations

from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.audit.services import Actor
from apps.control.choices import AdmissionEngine, AdmissionMode
from apps.control.selectors import cluster_list
from apps.webhook import services
from kubedoor_site.permissions import has_perms


class KubernetesRefused(APIException):
    status_code = status.HTTP_502_BAD_GATEWAY
    default_code = "kubernetes_error"
    default_detail = "Kubernetes refused the request."


class YAMLTextParser(BaseParser):
    """A raw YAML (or JSON) Deployment as the whole body: ``kubectl ... -o yaml | curl --data-binary @-``."""

    media_type = "application/yaml"

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        return {"deployment": stream.read().decode("utf-8", errors="replace")}


class TextYAMLParser(YAMLTextParser):
    media_type = "text/yaml"


class AdmissionModeSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=AdmissionMode.choices, required=False)
    engine = serializers.ChoiceField(
        choices=AdmissionEngine.choices,
        required=False,
        help_text="webhook or policy (MutatingAdmissionPolicy, Kubernetes 1.34+); switched before the mode.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError("Give the mode, the engine, or both.")
        return attrs


class PreviewSerializer(serializers.Serializer):
    cluster = serializers.SlugField()
    deployment = serializers.JSONField(help_text="A Deployment object, or its YAML/JSON text.")
    old_deployment = serializers.JSONField(required=False, allow_null=True, help_text="For an UPDATE preview.")
    mode = serializers.ChoiceField(choices=[AdmissionMode.AUDIT, AdmissionMode.ENFORCE], required=False)


class ClusterAdmissionView(APIView):
    """GET the admission mode, engine and what the cluster really has; POST a new mode and/or engine (admins)."""

    def get_permissions(self) -> list[Any]:
        if self.request.method == "GET":
            return [has_perms("control.view_cluster")()]
        return [has_perms("control.change_admission_mode")()]

    def _cluster(self, name: str) -> Any:
        return get_object_or_404(cluster_list(), name=name)

    @extend_schema(responses={200: dict})
    def get(self, request: Request, name: str) -> Response:
        return Response(services.admission_state_get(cluster=self._cluster(name)))

    @extend_schema(request=AdmissionModeSerializer, responses={200: dict})
    def post(self, request: Request, name: str) -> Response:
        cluster = self._cluster(name)
        data = AdmissionModeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        try:
            if "engine" in values:
                services.admission_engine_set(actor=Actor.for_api(request), cluster=cluster, engine=values["engine"])
            if "mode" in values:
                services.admission_mode_set(actor=Actor.for_api(request), cluster=cluster, mode=values["mode"])
        except services.AdmissionRegistrationError as exc:
            raise KubernetesRefused(exc.message) from exc
        return Response(services.admission_state_get(cluster=cluster))


class AdmissionPreviewView(APIView):
    """POST a Deployment (JSON or YAML) and a cluster: the decision, warnings, patch and patched object."""

    parser_classes = [JSONParser, YAMLTextParser, TextYAMLParser]

    def get_permissions(self) -> list[Any]:
        return [has_perms("control.view_microservice")()]

    @extend_schema(request=PreviewSerializer, responses={200: dict})
    def post(self, request: Request) -> Response:
        data = dict(request.data)
        if "cluster" not in data and request.query_params.get("cluster"):
            data["cluster"] = request.query_params["cluster"]
        serializer = PreviewSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        values = serializer.validated_data
        cluster = get_object_or_404(cluster_list(), name=values["cluster"])
        return Response(
            services.admission_preview(
                cluster=cluster,
                deployment=values["deployment"],
                old_deployment=values.get("old_deployment"),
                mode=values.get("mode"),
            )
        )
