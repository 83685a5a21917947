"""Moving ``UserPreference`` from the control app to accounts kept its table, its rows and its content type."""

import sqlite3
import subprocess
import sys

from tests.servers import REPO


def manage(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, check=True, capture_output=True, text=True, timeout=300
    )
    return done.stdout


def test_a_database_of_the_old_layout_keeps_its_language_preferences(tmp_path):
    # given a SQLite database migrated as far as the control app went before the move, with a preference
    database = tmp_path / "old.sqlite3"
    env = {
        "PATH": "/usr/bin:/bin",
        "DATABASE_URL": f"sqlite:///{database}",
        "KUBEDOOR_VAR_DIR": str(tmp_path),
        "CELERY_BROKER_URL": "filesystem://",
    }
    manage("migrate", "control", "0007_hpa_temporary_scale", "--noinput", env=env)
    with sqlite3.connect(database) as db:
        db.execute(
            "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff,"
            " is_active, date_joined) VALUES ('!', 0, 'li', '', '', '', 1, 1, '2026-01-01 00:00:00')"
        )
        db.execute(
            "INSERT INTO control_userpreference (user_id, language)"
            " SELECT id, 'zh-hans' FROM auth_user WHERE username = 'li'"
        )
        (old_content_type,) = db.execute(
            "SELECT id FROM django_content_type WHERE app_label = 'control' AND model = 'userpreference'"
        ).fetchone()
    # when every migration runs
    manage("migrate", "--noinput", env=env)
    # then the accounts model reads the same row from the same table, and the content type moved with it
    output = manage(
        "shell",
        "-c",
        "from apps.accounts.models import UserPreference; "
        "from django.contrib.contenttypes.models import ContentType; "
        "print(list(UserPreference.objects.values_list('user__username', 'language'))); "
        "print(sorted(ContentType.objects.filter(model='userpreference').values_list('app_label', 'id')))",
        env=env,
    )
    assert output.strip().splitlines()[-2:] == [
        "[('li', 'zh-hans')]",
        f"[('accounts', {old_content_type})]",
    ]
