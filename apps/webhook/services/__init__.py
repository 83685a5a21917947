"""Webhook services, one module per job, every public name importable from here.

- :mod:`~apps.webhook.services.answer`: answering an AdmissionReview from the snapshot (the hot path);
- :mod:`~apps.webhook.services.admission_mode`: admission off / audit / enforce, registered in Kubernetes;
- :mod:`~apps.webhook.services.admission_policy`: the webhook-less engine's policies and parameters;
- :mod:`~apps.webhook.services.preview`: what the webhook would answer for a Deployment;
- :mod:`~apps.webhook.services.export`: the table as a GitOps change (kustomize patches, data);
- :mod:`~apps.webhook.services.drift`: live Deployments that differ from what admission would set.
"""

from apps.webhook.services.admission_mode import (
    AdmissionRegistrationError,
    admission_engine_set,
    admission_mode_set,
    admission_state_get,
    webhook_configuration_for,
)
from apps.webhook.services.admission_policy import admission_policy_sync
from apps.webhook.services.answer import (
    MAX_BODY_BYTES,
    ReviewAnswer,
    admission_review_handle,
    internal_error,
    method_not_allowed,
    too_large,
)
from apps.webhook.services.drift import drift_check, drift_check_all, drift_list, drift_schedule_sync
from apps.webhook.services.export import cluster_export, export_check, export_folder
from apps.webhook.services.preview import admission_container_resources, admission_preview

__all__ = [
    "MAX_BODY_BYTES",
    "AdmissionRegistrationError",
    "ReviewAnswer",
    "admission_container_resources",
    "admission_engine_set",
    "admission_mode_set",
    "admission_policy_sync",
    "admission_preview",
    "admission_review_handle",
    "admission_state_get",
    "cluster_export",
    "drift_check",
    "drift_check_all",
    "drift_list",
    "drift_schedule_sync",
    "export_check",
    "export_folder",
    "internal_error",
    "method_not_allowed",
    "too_large",
    "webhook_configuration_for",
]
