"""The admission decision of DESIGN §6.2, as pure functions (no database, network or clock).

``parse_review`` turns a request body into a :class:`Review` (or raises :class:`AdmissionParseError`
for anything that is not an AdmissionReview), ``decide`` maps (review, control row, cluster settings,
whether control data is available) to a :class:`Decision`, and ``response_body`` renders the
AdmissionReview answer. The view, the preview API and the tests share exactly this one rule.
"""

from apps.webhook.admission.decision import (
    ACTION_AUDIT,
    ACTION_DENY,
    ACTION_PATCH,
    ACTION_STORE_ERROR,
    ALLOW,
    AUDIT_DENY_PREFIX,
    AUDIT_PREFIX,
    DENY,
    HPA_CONTROLLER_USERNAME,
    MODE_AUDIT,
    MODE_ENFORCE,
    MODE_OFF,
    PATCH,
    REPLICAS_MODE_ENFORCE,
    WARNING_PREFIX,
    ClusterSettings,
    ControlRow,
    Decision,
    decide,
    replicas_controlled,
    response_body,
)
from apps.webhook.admission.quantity import cpu_text, mem_text, parse_quantity, pointer, same_quantity
from apps.webhook.admission.review import API_VERSIONS, AdmissionParseError, Review, parse_review

__all__ = [
    "ACTION_AUDIT",
    "ACTION_DENY",
    "ACTION_PATCH",
    "ACTION_STORE_ERROR",
    "ALLOW",
    "API_VERSIONS",
    "AUDIT_DENY_PREFIX",
    "AUDIT_PREFIX",
    "DENY",
    "HPA_CONTROLLER_USERNAME",
    "MODE_AUDIT",
    "MODE_ENFORCE",
    "MODE_OFF",
    "PATCH",
    "REPLICAS_MODE_ENFORCE",
    "WARNING_PREFIX",
    "AdmissionParseError",
    "ClusterSettings",
    "ControlRow",
    "Decision",
    "Review",
    "cpu_text",
    "decide",
    "mem_text",
    "parse_quantity",
    "parse_review",
    "pointer",
    "replicas_controlled",
    "response_body",
    "same_quantity",
]
