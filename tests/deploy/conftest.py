"""The rendered base and production overlay, shared by the deploy tests."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

from tests.deploy.manifests import DEPLOY, TEST_SECRETS, render


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return render(DEPLOY / "base")


@pytest.fixture(scope="module")
def production(tmp_path_factory) -> list[dict[str, Any]]:
    """The production overlay rendered from a copy of deploy/ with a secret.env as the guide creates it."""
    tree = tmp_path_factory.mktemp("deploy") / "deploy"
    shutil.copytree(DEPLOY, tree, ignore=shutil.ignore_patterns("secret.env"))
    (tree / "overlays" / "production" / "secret.env").write_text(
        "".join(f"{key}={value}\n" for key, value in TEST_SECRETS.items())
    )
    return render(tree / "overlays" / "production")


@pytest.fixture(params=["base", "production"])
def rendered(request) -> list[dict[str, Any]]:
    return request.getfixturevalue(request.param)
