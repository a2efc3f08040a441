"""Workspace configuration as code (cdp.config_code):

    manage.py cdp_config export [--workspace NAME] [--format yaml|json] [--output FILE]
    manage.py cdp_config diff  --file FILE [--workspace NAME]
    manage.py cdp_config apply --file FILE [--workspace NAME] [--dry-run]

`apply` prints what it changes (the same lines as `diff`) and changes it all or nothing;
applying the same file again changes nothing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from cdp import config_code
from cdp.errors import ValidationFailed
from cdp.models import Workspace


class Command(BaseCommand):
    help = "Export a workspace's definitions, or show or apply a document's changes."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["export", "diff", "apply"])
        parser.add_argument("--workspace", help="its name (default: the only workspace)")
        parser.add_argument("--file", help="the document to diff or apply ('-' = stdin)")
        parser.add_argument("--output", help="export: write here instead of stdout")
        parser.add_argument("--format", choices=["yaml", "json"], default="yaml")
        parser.add_argument("--dry-run", action="store_true", help="apply: only show the diff")

    def handle(self, *args: Any, **options: Any) -> None:
        workspace = self._workspace(options["workspace"])
        if options["action"] == "export":
            text = config_code.dumps(config_code.export(workspace), options["format"])
            if options["output"]:
                Path(options["output"]).write_text(text, encoding="utf-8")
                self.stdout.write(f"Exported {workspace.name} to {options['output']}.")
            else:
                self.stdout.write(text, ending="")
            return
        if not options["file"]:
            raise CommandError(f"{options['action']} needs --file (a JSON or YAML document)")
        raw = (
            sys.stdin.read()
            if options["file"] == "-"
            else Path(options["file"]).read_text(encoding="utf-8")
        )
        try:
            doc = config_code.loads(raw)
            if options["action"] == "diff" or options["dry_run"]:
                changes = config_code.diff(workspace, doc)
            else:
                changes = config_code.apply(workspace, doc)
        except ValidationFailed as exc:
            lines = [f"  {path}: {'; '.join(msgs)}" for path, msgs in exc.fields.items()]
            raise CommandError("The document is not valid:\n" + "\n".join(lines)) from exc
        made = [c for c in changes if c.action != "extra"]
        for change in changes:
            self.stdout.write(change.text())
        verb = "would change" if options["action"] == "diff" or options["dry_run"] else "changed"
        self.stdout.write(f"{workspace.name}: {len(made)} definition(s) {verb}.")

    def _workspace(self, name: str | None) -> Workspace:
        if name:
            found = Workspace.objects.filter(name=name).first()
            if found is None:
                raise CommandError(f"No workspace named {name!r}.")
            return found
        workspaces = list(Workspace.objects.order_by("pk")[:2])
        if len(workspaces) != 1:
            raise CommandError("Name the workspace with --workspace (there is not exactly one).")
        return workspaces[0]
