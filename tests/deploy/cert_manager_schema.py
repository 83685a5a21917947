"""JSON schemas for the cert-manager objects in deploy/ (cert-manager.io/v1 Issuer and Certificate).

cert-manager's CRDs are not part of the Kubernetes core schemas that ``kubernetes-validate`` ships,
and no copy of them is installed with the project, so these schemas are written out here for the
fields KubeDoor's manifests use. They follow the cert-manager v1 API: the CRD's required fields
(``spec.secretName`` and ``spec.issuerRef.name`` on a Certificate, ``spec.ca.secretName`` on a CA
Issuer), its enums (private key algorithm, rotation policy, key usages, issuer kinds) and its types,
plus what cert-manager's own admission webhook enforces (an Issuer names exactly one issuer type;
key sizes per algorithm; Go durations). They are stricter than the CRD in one way: an unknown field
fails (``additionalProperties: false``), where the API server would silently prune it.
"""

from __future__ import annotations

from typing import Any

# Go time.ParseDuration units as cert-manager accepts them, e.g. "2160h", "90m", "1h30m".
GO_DURATION = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"
DNS_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

KEY_USAGES = [
    "signing",
    "digital signature",
    "content commitment",
    "key encipherment",
    "key agreement",
    "data encipherment",
    "cert sign",
    "crl sign",
    "encipher only",
    "decipher only",
    "any",
    "server auth",
    "client auth",
    "code signing",
    "email protection",
    "s/mime",
    "ipsec end system",
    "ipsec tunnel",
    "ipsec user",
    "timestamping",
    "ocsp signing",
    "microsoft sgc",
    "netscape sgc",
]

_METADATA: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": DNS_NAME, "maxLength": 253},
        "namespace": {"type": "string", "pattern": DNS_NAME, "maxLength": 63},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}

_ISSUER_REF: dict[str, Any] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "kind": {"enum": ["Issuer", "ClusterIssuer"]},
        "group": {"const": "cert-manager.io"},
    },
    "additionalProperties": False,
}

_PRIVATE_KEY: dict[str, Any] = {
    "type": "object",
    "properties": {
        "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
        "encoding": {"enum": ["PKCS1", "PKCS8"]},
        "rotationPolicy": {"enum": ["Never", "Always"]},
        "size": {"type": "integer"},
    },
    "additionalProperties": False,
    "allOf": [
        {
            "if": {"properties": {"algorithm": {"const": "ECDSA"}}, "required": ["algorithm"]},
            "then": {"properties": {"size": {"enum": [256, 384, 521]}}},
        },
        {
            "if": {"properties": {"algorithm": {"const": "RSA"}}, "required": ["algorithm"]},
            "then": {"properties": {"size": {"enum": [2048, 4096, 8192]}}},
        },
    ],
}

CERTIFICATE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "cert-manager.io/v1"},
        "kind": {"const": "Certificate"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "required": ["secretName", "issuerRef"],
            "properties": {
                "secretName": {"type": "string", "pattern": DNS_NAME},
                "issuerRef": _ISSUER_REF,
                "commonName": {"type": "string", "maxLength": 64},
                "dnsNames": {"type": "array", "minItems": 1, "items": {"type": "string", "pattern": DNS_NAME}},
                "isCA": {"type": "boolean"},
                "duration": {"type": "string", "pattern": GO_DURATION},
                "renewBefore": {"type": "string", "pattern": GO_DURATION},
                "privateKey": _PRIVATE_KEY,
                "usages": {"type": "array", "items": {"enum": KEY_USAGES}, "uniqueItems": True},
            },
            "additionalProperties": False,
            # A certificate needs a subject: a common name or at least one DNS name.
            "anyOf": [{"required": ["commonName"]}, {"required": ["dnsNames"]}],
        },
    },
    "additionalProperties": False,
}

_ISSUER_TYPES = ("selfSigned", "ca")

ISSUER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "cert-manager.io/v1"},
        "kind": {"const": "Issuer"},
        "metadata": _METADATA,
        "spec": {
            "type": "object",
            "properties": {
                "selfSigned": {
                    "type": "object",
                    "properties": {"crlDistributionPoints": {"type": "array", "items": {"type": "string"}}},
                    "additionalProperties": False,
                },
                "ca": {
                    "type": "object",
                    "required": ["secretName"],
                    "properties": {
                        "secretName": {"type": "string", "pattern": DNS_NAME},
                        "crlDistributionPoints": {"type": "array", "items": {"type": "string"}},
                        "ocspServers": {"type": "array", "items": {"type": "string"}},
                        "issuingCertificateURLs": {"type": "array", "items": {"type": "string"}},
                    },
                    "additionalProperties": False,
                },
            },
            "additionalProperties": False,
            # cert-manager's webhook: exactly one issuer type per Issuer.
            "oneOf": [{"required": [name]} for name in _ISSUER_TYPES],
        },
    },
    "additionalProperties": False,
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Certificate": CERTIFICATE_SCHEMA,
    "Issuer": ISSUER_SCHEMA,
}
