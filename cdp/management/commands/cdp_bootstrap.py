import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from cdp.services import workspace_bootstrap


class Command(BaseCommand):
    help = (
        "Create (or find) a workspace with an owner, a source and keys; prints JSON. "
        "Idempotent: the password is printed only when the user was just created."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--workspace", required=True, help="workspace name")
        parser.add_argument("--email", default=None, help="admin login (default: admin)")
        parser.add_argument("--password", default=None, help="admin password (default: random)")

    def handle(self, *args: Any, **options: Any) -> None:
        result = workspace_bootstrap(
            name=options["workspace"], email=options["email"], password=options["password"]
        )
        self.stdout.write(json.dumps(result.as_dict()))
