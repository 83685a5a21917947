"""A real OpenID Connect provider on loopback: oidc-provider-mock run as its own process.

``oidc_provider`` (session scope) starts ``python -m oidc_provider_mock`` on a free port and yields an
:class:`OidcProvider`: its ``issuer`` URL, ``env()`` — the ``OIDC_*`` variables an operator would set
for it —, ``user_set(sub, claims)`` — the claims the provider gives that subject from now on (its
``PUT /users/<sub>``) — and ``authorize(url, sub)`` — a person choosing ``sub`` on the provider's
login form: the redirect back to the client, with the code, as the provider answers it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.servers import free_port, stop_process, wait_for_port

CLIENT_ID = "kubedoor-test"
CLIENT_SECRET = "kubedoor-test-client-secret"  # test-only provider: it accepts any registered-or-not client


@dataclass(frozen=True)
class OidcProvider:
    issuer: str

    def env(self, **extra: str) -> dict[str, str]:
        return {
            "OIDC_RP_CLIENT_ID": CLIENT_ID,
            "OIDC_RP_CLIENT_SECRET": CLIENT_SECRET,
            "OIDC_OP_AUTHORIZATION_ENDPOINT": f"{self.issuer}/oauth2/authorize",
            "OIDC_OP_TOKEN_ENDPOINT": f"{self.issuer}/oauth2/token",
            "OIDC_OP_USER_ENDPOINT": f"{self.issuer}/userinfo",
            "OIDC_OP_JWKS_ENDPOINT": f"{self.issuer}/jwks",
            "OIDC_GROUP_ROLES": "team-a:operator,team-view:viewer,platform:admin",
            "OIDC_VERIFY_KID": "false",  # this provider's single key has no id in its tokens
            **extra,
        }

    def user_set(self, sub: str, claims: dict[str, Any]) -> None:
        response = httpx.put(f"{self.issuer}/users/{sub}", json=claims, timeout=10)
        assert response.status_code == 204, response.text

    def authorize(self, url: str, sub: str) -> httpx.Response:
        """Submit the provider's authorization form at ``url`` as ``sub``; the provider's redirect."""
        assert url.startswith(self.issuer + "/oauth2/authorize?"), url
        return httpx.post(url, data={"sub": sub}, follow_redirects=False, timeout=10)


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OidcProvider]:
    port = free_port()
    env = {**os.environ, "NO_COLOR": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, process=process)
        yield OidcProvider(issuer=f"http://127.0.0.1:{port}")
    finally:
        stop_process(process)
