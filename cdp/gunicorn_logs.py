"""gunicorn's own log lines (`Booting worker`, `WORKER TIMEOUT`, access lines) in the format of
ours: `cdp_run` starts gunicorn with `--logger-class cdp.gunicorn_logs.Logger`. With
LOG_FORMAT=json they are JSON records like every other (cdp/logs.py); in text, gunicorn's
own format is kept."""

from __future__ import annotations

import os
from typing import Any

from gunicorn import glogging

from cdp import logs


class Logger(glogging.Logger):  # type: ignore[misc]
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        log_format = logs.check_format(os.environ.get("LOG_FORMAT", "text"))
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                handler.addFilter(logs.ContextFilter())
                if log_format == "json":
                    handler.setFormatter(logs.JsonFormatter())
