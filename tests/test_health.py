import pytest


@pytest.mark.django_db
def test_healthz_and_readyz_answer_without_authentication(client):
    # when
    health = client.get("/healthz")
    ready = client.get("/readyz")
    # then
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "database": "ok"}
