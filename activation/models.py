from django.db import models
from django.utils import timezone

from cdp.keys import new_key
from cdp.models import Workspace


def _server_key() -> str:
    return new_key("sk")


class ServerKey(models.Model):
    """Authenticates sites and servers calling the decision API (GET /v1/decide)."""

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="server_keys")
    name = models.CharField(max_length=100)
    key = models.CharField(max_length=64, unique=True, default=_server_key)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name
