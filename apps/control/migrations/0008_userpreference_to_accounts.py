"""``UserPreference`` moved to the accounts app (accounts 0001): drop it from this app's state only.

The table ``control_userpreference`` and its rows stay; the accounts app's model uses that table.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("control", "0007_hpa_temporary_scale"),
        ("accounts", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="UserPreference")],
            database_operations=[],
        ),
    ]
