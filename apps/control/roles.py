"""Where the roles lived before they moved to ``apps.accounts.roles``.

Kept only for the historical data migrations that import ``roles_sync`` from here (control 0002 and
0004, metrics 0002), so those files stay as they ran. New code imports ``apps.accounts.roles``.
"""

from apps.accounts.roles import roles_sync

__all__ = ["roles_sync"]
