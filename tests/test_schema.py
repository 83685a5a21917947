"""The OpenAPI schema is generated without warnings and validates."""

import pytest
import yaml
from django.core.management import call_command


@pytest.mark.django_db
def test_openapi_schema_validates(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = yaml.safe_load(target.read_text())
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/microservices/" in schema["paths"]
    assert "/api/v1/audit-events/" in schema["paths"]
    assert set(schema["paths"]["/api/v1/audit-events/{id}/"]) == {"get", "parameters"} or set(
        schema["paths"]["/api/v1/audit-events/{id}/"]
    ) == {"get"}
    row = schema["components"]["schemas"]["Microservice"]["properties"]
    assert row["replicas_measured"].get("deprecated") is None
    assert {
        name: row[name].get("deprecated")
        for name in ("pod_count_init", "pod_count", "pod_count_manual", "pod_count_ai")
    } == {
        "pod_count_init": True,
        "pod_count": True,
        "pod_count_manual": True,
        "pod_count_ai": True,
    }


@pytest.mark.django_db
def test_schema_and_docs_are_served(client):
    assert client.get("/api/schema/").status_code == 200
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    assert b"//cdn" not in docs.content  # bundled Swagger UI, nothing from the internet
