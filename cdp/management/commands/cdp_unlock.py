"""Lift a sign-in pause (django-axes lockout) for a username or an IP address, and the API-token
failure count of that address; audited in the user's workspaces."""

from __future__ import annotations

from typing import Any

from axes.utils import reset
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cdp import access, security
from cdp.models import audit


class Command(BaseCommand):
    help = "Lift the sign-in pause of a username and/or an IP address."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--username", default="")
        parser.add_argument("--ip", default="")

    def handle(self, *args: Any, username: str, ip: str, **options: Any) -> None:
        if not username and not ip:
            raise CommandError("give --username or --ip (or both)")
        lifted = reset(ip=ip or None, username=username or None)
        if ip:
            security.token_failures_forget(ip)
        user = get_user_model().objects.filter(username=username).first() if username else None
        for workspace in access.workspaces_of(user) if user else []:
            audit(
                workspace=workspace,
                actor=None,
                action="auth.unlock",
                target=user,
                detail={"username": username, "ip": ip, "attempts_cleared": lifted},
            )
        self.stdout.write(f"lifted: {lifted} recorded attempt(s) cleared")
