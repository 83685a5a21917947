"""Create or update a KubeDoor admin; there is no default password anywhere (DESIGN §10)."""

from __future__ import annotations

import os
import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from rest_framework.authtoken.models import Token

from apps.accounts.roles import ADMIN


class Command(BaseCommand):
    help = (
        "Create or update an admin user. The password comes from KUBEDOOR_ADMIN_PASSWORD, or is generated "
        "and printed once. With --token, print the user's API token."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", required=True)
        parser.add_argument("--email", default="")
        parser.add_argument("--token", action="store_true", help="print (creating if needed) the API token")
        parser.add_argument(
            "--if-none",
            action="store_true",
            help="do nothing when any superuser exists already (used by `make run`)",
        )

    def handle(self, *args: Any, username: str, email: str, token: bool, if_none: bool, **options: Any) -> None:
        User = get_user_model()
        if if_none and User.objects.filter(is_superuser=True).exists():
            self.stdout.write("An admin exists already; no user created.")
            return
        password = os.environ.get("KUBEDOOR_ADMIN_PASSWORD", "")
        generated = not password
        if generated:
            password = secrets.token_urlsafe(18)
        with transaction.atomic():
            user, created = User.objects.get_or_create(username=username, defaults={"email": email})
            try:
                validate_password(password, user)
            except ValidationError as exc:
                raise CommandError("KUBEDOOR_ADMIN_PASSWORD is too weak: " + " ".join(exc.messages)) from exc
            user.is_staff = True
            user.is_superuser = True
            if email:
                user.email = email
            user.set_password(password)
            user.save()
            user.groups.add(Group.objects.get(name=ADMIN))
        self.stdout.write(self.style.SUCCESS(f"Admin {username!r} {'created' if created else 'updated'}."))
        if generated:
            self.stdout.write(f"Username: {username}\nPassword: {password}\n(shown once; store it now)")
        if token:
            api_token, _ = Token.objects.get_or_create(user=user)
            self.stdout.write(f"API token: {api_token.key}")
