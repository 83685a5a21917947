"""Django's makemessages, also extracting the dashboard scripts' ``tr("…")`` strings.

The scripts under ``apps/*/static/kubedoor/`` translate through a small ``tr`` helper that calls
``window.gettext`` when the JavaScript catalogue is loaded; xgettext only knows ``gettext`` and its
relatives, so ``tr`` is declared as one more keyword (for both domains; no Python code calls ``tr``).

The ``djangojs`` catalogue also gets the strings of Django's own admin scripts that Django's
catalogues do not translate yet (see ``DJANGO_ADMIN_JS_STRINGS``): the admin's JavaScript catalogue
merges the project's catalogue (``LOCALE_PATHS``) with Django's, so translating them here completes
the admin widgets KubeDoor's pages use.
"""

from django.core.management.base import CommandError
from django.core.management.commands.makemessages import Command as MakeMessagesCommand
from django.core.management.utils import popen_wrapper

# Django 5.2's two-box selector (admin/js/SelectFilter2.js, used for a scheduled operation's targets)
# asks for these; Django's zh_Hans catalogue still has the older wording only.
DJANGO_ADMIN_JS_STRINGS = (
    'Choose %s by selecting them and then select the "Choose" arrow button.',
    "Choose all %s",
    "Choose selected %s",
    "Remove selected %s",
    'Remove %s by selecting them and then select the "Remove" arrow button.',
    "Remove all %s",
    "(click to clear)",
)


def _po_quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


class Command(MakeMessagesCommand):
    xgettext_options = [*MakeMessagesCommand.xgettext_options, "--keyword=tr"]

    def build_potfiles(self) -> list[str]:
        potfiles = super().build_potfiles()
        if self.domain != "djangojs":
            return potfiles
        entries = "".join(
            ("\n#, javascript-format" if "%s" in text else "\n") + f'\nmsgid "{_po_quote(text)}"\nmsgstr ""\n'
            for text in DJANGO_ADMIN_JS_STRINGS
        )
        for potfile in potfiles:
            with open(potfile, "a", encoding="utf-8") as fp:
                fp.write(entries)
            # msguniq again: one entry per msgid even if a project script uses the same text
            msgs, errors, status = popen_wrapper(["msguniq", *self.msguniq_options, potfile])
            if status:
                raise CommandError(f"errors happened while running msguniq\n{errors}")
            with open(potfile, "w", encoding="utf-8") as fp:
                fp.write(msgs)
        return potfiles
