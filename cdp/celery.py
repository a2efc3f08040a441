import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")

app = Celery("cdp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# the worker heartbeat that /readyz reads (by name: Django is not set up yet here)
app.steps["consumer"].add("cdp.health:WorkerHeartbeat")
