"""REST endpoints of the webhook app: admission state and mode per cluster, and the decision preview."""

from __future__ import annotations

from typing import Any

import yaml
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import APIException
from rest_framework.parsers import BaseParser, JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.scopes import scope_cluster_filter, scope_sees
from apps.audit.services import Actor
from apps.control import k8s
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
        return get_object_or_404(scope_cluster_filter(self.request.user, cluster_list()), name=name)

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


def _preview_namespace(deployment: Any) -> str:
    """The namespace a previewed Deployment (object or YAML/JSON text) names; ``default`` when none."""
    if isinstance(deployment, str):
        try:
            deployment = yaml.safe_load(deployment)
        except yaml.YAMLError:
            deployment = None
    metadata = deployment.get("metadata") if isinstance(deployment, dict) else None
    return str((metadata if isinstance(metadata, dict) else {}).get("namespace") or "default")


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
        cluster = get_object_or_404(scope_cluster_filter(request.user, cluster_list()), name=values["cluster"])
        if not scope_sees(request.user, cluster=cluster.name, namespace=_preview_namespace(values["deployment"])):
            raise Http404  # a namespace outside the user's scopes: its control rows are not theirs to read
        return Response(
            services.admission_preview(
                cluster=cluster,
                deployment=values["deployment"],
                old_deployment=values.get("old_deployment"),
                mode=values.get("mode"),
            )
        )


class _ClusterReadView(APIView):
    """A read of one cluster's live Deployments (viewers may): ``namespace`` narrows it to one namespace.

    ``?format=`` names the export's format here, not DRF's renderer, so content negotiation always
    answers JSON (the tarball and the YAML stream are returned as they are).
    """

    renderer_classes = [JSONRenderer]

    def get_permissions(self) -> list[Any]:
        return [has_perms("control.view_microservice")()]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple[Any, str]:
        renderer = JSONRenderer()
        return renderer, renderer.media_type

    def _cluster(self, name: str) -> Any:
        return get_object_or_404(scope_cluster_filter(self.request.user, cluster_list()), name=name)


NAMESPACE_PARAMETER = OpenApiParameter("namespace", str, description="Only this namespace.")


class ClusterExportView(_ClusterReadView):
    """GET the control table as a GitOps change: ``format=kustomize`` (a tar.gz, or with ``layout=stream``
    one multi-document YAML stream) or ``format=json`` (the same values as data)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("format", str, enum=list(services.export.FORMATS), description="Default kustomize."),
            OpenApiParameter("layout", str, enum=list(services.export.LAYOUTS), description="kustomize only."),
            NAMESPACE_PARAMETER,
        ],
        responses={200: dict},
    )
    def get(self, request: Request, name: str) -> Any:
        cluster = self._cluster(name)
        export_format = request.query_params.get("format", "kustomize")
        layout = request.query_params.get("layout", "tar")
        services.export_check(format=export_format, layout=layout)
        try:
            result = services.cluster_export(
                cluster=cluster,
                format=export_format,
                layout=layout,
                namespace=request.query_params.get("namespace") or None,
                user=request.user,
            )
        except k8s.K8sError as exc:
            raise KubernetesRefused(exc.message) from exc
        if export_format == "json":
            return Response(result)
        folder = services.export_folder(cluster.name)
        if layout == "stream":
            response = HttpResponse(result, content_type="application/yaml; charset=utf-8")
            response["Content-Disposition"] = f'inline; filename="{folder}.yaml"'
            return response
        response = HttpResponse(result, content_type="application/gzip")
        response["Content-Disposition"] = f'attachment; filename="{folder}.tar.gz"'
        return response


class ClusterDriftView(_ClusterReadView):
    """GET every controlled Deployment whose live replicas, requests or limits differ from what admission
    would set now, with the patch admission would send."""

    @extend_schema(parameters=[NAMESPACE_PARAMETER], responses={200: dict})
    def get(self, request: Request, name: str) -> Response:
        cluster = self._cluster(name)
        try:
            return Response(
                services.drift_list(
                    cluster=cluster, namespace=request.query_params.get("namespace") or None, user=request.user
                )
            )
        except k8s.K8sError as exc:
            raise KubernetesRefused(exc.message) from exc
