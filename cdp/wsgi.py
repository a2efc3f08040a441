import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")

from cdp import fastpaths, warmup  # noqa: E402 - after the settings module is named

application = fastpaths.application(get_wsgi_application())
warmup.settle()  # in each server process, after loading it: before its first request
