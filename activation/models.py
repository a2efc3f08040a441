from django.db import models
from django.utils import timezone

from cdp.keys import HashedSecret, new_key
from cdp.models import Workspace


def _server_key() -> str:  # the default of the clear-text column of migration 0001
    return new_key("sk")


class ServerKey(HashedSecret):
    """Authenticates sites and servers calling the decision API (GET /v1/decide). Stored as a
    digest: the key is shown once, when it is made."""

    KEY_PREFIX = "sk"

    workspace = models.ForeignKey(Workspace, on_delete=models.CASCADE, related_name="server_keys")
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name
