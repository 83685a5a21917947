"""Imports run one way (docs/ARCHITECTURE.md): the import-linter contracts in pyproject.toml.

Faces (admin, API, views, tasks, commands) → services and selectors → doors and models; metrics and
webhook → control → accounts → audit; the project's support modules import no app; only
kubedoor_site/beat.py touches django-celery-beat. Imports inside functions count, so a cycle cannot
hide in one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_imports_keep_every_contract():
    # when
    result = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache", "--no-logo", "--config", "pyproject.toml"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    # then
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 5 kept, 0 broken." in result.stdout
