"""Both languages: every UI string has a Simplified Chinese translation, and the compiled
catalogues in the repository are the ones the sources produce."""

import re
import shutil
import subprocess
import sys

import pytest
from django.test import Client

from tests.servers import REPO, require_binary

CATALOGUES = ("django", "djangojs")
SOURCES = ("apps", "kubedoor_site", "locale", "manage.py")
LC_MESSAGES = "locale/zh_Hans/LC_MESSAGES"


def _msgids(po_text: str) -> list[str]:
    return re.findall(r'^msgid "(.+)"$', po_text, re.M)


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory):
    """A copy of the sources whose zh_Hans catalogues makemessages has brought up to date.

    The same command a developer runs in the repository (the project's makemessages, which also
    extracts the dashboard scripts' tr("…") strings); only the sources the site ships are copied,
    so tests, benchmarks and deploy files never reach the catalogues.
    """
    require_binary("xgettext")
    require_binary("msgmerge")
    copy = tmp_path_factory.mktemp("i18n")
    for name in SOURCES:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
        else:
            shutil.copy(source, copy / name)
    env = {
        "PATH": "/usr/bin:/bin",
        "KUBEDOOR_VAR_DIR": str(copy / "var"),
        "DJANGO_SETTINGS_MODULE": "kubedoor_site.settings",
    }
    for domain in CATALOGUES:
        subprocess.run(
            [
                sys.executable, "manage.py", "makemessages", "-l", "zh_Hans", "-d", domain,
                "--no-obsolete", "--no-location", "--ignore", "var/*",
            ],
            cwd=copy, env=env, check=True, capture_output=True, timeout=300,
        )  # fmt: skip
    return copy


@pytest.mark.parametrize("domain", CATALOGUES)
def test_every_ui_string_is_translated(regenerated, domain):
    require_binary("msgattrib")
    po = regenerated / LC_MESSAGES / f"{domain}.po"
    stats = subprocess.run(
        ["msgfmt", "--statistics", "-o", "/dev/null", str(po)], capture_output=True, text=True, check=True
    ).stderr
    untranslated = subprocess.run(
        ["msgattrib", "--untranslated", "--no-wrap", str(po)], capture_output=True, text=True, check=True
    ).stdout
    fuzzy = subprocess.run(
        ["msgattrib", "--only-fuzzy", "--no-wrap", str(po)], capture_output=True, text=True, check=True
    ).stdout
    missing = _msgids(untranslated)
    assert missing == [], f"{len(missing)} untranslated strings ({stats.strip()}): {missing[:20]}"
    assert _msgids(fuzzy) == [], "fuzzy (guessed) translations left: check and remove the fuzzy flag"
    assert "fuzzy" not in stats, stats
    assert "untranslated" not in stats, stats


@pytest.mark.parametrize("domain", CATALOGUES)
def test_committed_catalogues_are_compiled_and_current(regenerated, domain, tmp_path):
    require_binary("msgfmt")
    require_binary("msgcmp")
    committed_po = REPO / LC_MESSAGES / f"{domain}.po"
    committed_mo = committed_po.with_suffix(".mo")
    header = committed_po.read_text(encoding="utf-8")
    assert '"Language: zh_Hans\\n"' in header
    assert '"Content-Type: text/plain; charset=UTF-8\\n"' in header
    assert '"Plural-Forms: nplurals=1; plural=0;\\n"' in header
    assert "#, fuzzy" not in header
    # compiled the way manage.py compilemessages does it (placeholders checked against the msgid)
    compiled = tmp_path / f"{domain}.mo"
    subprocess.run(["msgfmt", "--check-format", "-o", str(compiled), str(committed_po)], check=True)
    assert committed_mo.read_bytes() == compiled.read_bytes(), "run: cd locale && ../manage.py compilemessages"
    fresh_po = regenerated / LC_MESSAGES / f"{domain}.po"
    for reference, definitions in ((fresh_po, committed_po), (committed_po, fresh_po)):
        # every msgid of `reference` is in `definitions`: no new string missing, no stale string kept
        same_ids = subprocess.run(
            ["msgcmp", "--use-untranslated", str(definitions), str(reference)], capture_output=True, text=True
        )
        assert same_ids.returncode == 0, "run: manage.py makemessages -l zh_Hans: " + same_ids.stderr[:2000]


@pytest.mark.django_db
def test_the_control_table_speaks_chinese_to_a_chinese_browser(viewer, service):
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-Hans,zh;q=0.9")
    client.force_login(viewer)
    html = client.get("/admin/control/microservice/").content.decode()
    assert '<html lang="zh-hans"' in html
    for term in ("管控表", "当日Pod", "指定Pod", "高峰时段", "命名空间", "微服务"):
        assert term in html
    english = Client(HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9")
    english.force_login(viewer)
    html = english.get("/admin/control/microservice/").content.decode()
    assert '<html lang="en"' in html
    assert "today pod" in html
    assert "当日Pod" not in html


@pytest.mark.django_db
def test_the_dashboard_scripts_get_their_chinese_catalogue(viewer):
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-Hans,zh;q=0.9")
    client.force_login(viewer)
    script = client.get("/jsi18n/").content.decode()
    # JavaScriptCatalog writes non-ASCII as \uXXXX escapes in its JSON
    assert '"%(service)s \\u2014 source day %(day)s": "%(service)s \\u2014 \\u6765\\u6e90\\u65e5 %(day)s"' in script
    assert '"request": "\\u8bf7\\u6c42\\u503c"' in script
    english = Client(HTTP_ACCEPT_LANGUAGE="en")
    english.force_login(viewer)
    assert "\\u6765\\u6e90\\u65e5" not in english.get("/jsi18n/").content.decode()
