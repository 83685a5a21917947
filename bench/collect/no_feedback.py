"""``manage.py`` with the safety-feedback queries switched off: the collection as it was before issue 11 item 3.

    python bench/collect/no_feedback.py collect_peaks --cluster NAME --days 10

bench/collect/run.py (``--feedback-queries on,off``) runs it as the "before" of the collection's time
and memory with the feedback series present. It empties ``promql.FEEDBACK_STATISTICS`` before Django
starts: ``promql.day_queries`` then sends no ``oom_kills`` / ``throttled_pct`` request and the rows get
no feedback values; every other query, the store and the refresh are the current code's. (The commit
before the feedback, 105d075^, also predates issue 14's cheaper queries, so it would not measure the
feedback alone.)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "kubedoor_site.settings")

from apps.metrics import promql  # noqa: E402

promql.FEEDBACK_STATISTICS = ()  # type: ignore[assignment]

if __name__ == "__main__":
    os.chdir(REPO)
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", *sys.argv[1:]])
