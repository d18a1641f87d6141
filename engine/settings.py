"""Operating settings read from the environment: mail delivery, service levels, calendar.

Kept apart from the process models: these are the body's operating choices, changed by an
administrator without a new model version.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date

from .errors import CertrailError


@dataclass(frozen=True)
class SmtpSettings:
    host: str | None = None
    port: int = 25
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    ssl: bool = False
    sender: str = "certrail@localhost"
    timeout: float = 10.0


@dataclass(frozen=True)
class Settings:
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    # Service levels for every user task that does not set its own (ISO 8601 durations).
    remind_before: str = "P2D"
    escalate_after: str = "P3D"
    # Days that do not count as business days besides Saturdays and Sundays.
    holidays: frozenset[date] = frozenset()
    # Where links in e-mails point.
    base_url: str = "http://127.0.0.1:5000"

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def flag(name: str) -> bool:
            return env.get(name, "").strip().lower() in ("1", "true", "yes", "on")

        try:
            port = int(env.get("CERTRAIL_SMTP_PORT") or 25)
            holidays = frozenset(
                date.fromisoformat(d.strip())
                for d in env.get("CERTRAIL_HOLIDAYS", "").split(",")
                if d.strip()
            )
        except ValueError as exc:
            raise CertrailError(
                f"CERTRAIL_SMTP_PORT or CERTRAIL_HOLIDAYS is not valid: {exc}"
            ) from None
        smtp = SmtpSettings(
            host=env.get("CERTRAIL_SMTP_HOST") or None,
            port=port,
            username=env.get("CERTRAIL_SMTP_USER") or None,
            password=env.get("CERTRAIL_SMTP_PASSWORD") or None,
            starttls=flag("CERTRAIL_SMTP_STARTTLS"),
            ssl=flag("CERTRAIL_SMTP_SSL"),
            sender=env.get("CERTRAIL_MAIL_FROM") or "certrail@localhost",
        )
        return cls(
            smtp=smtp,
            remind_before=env.get("CERTRAIL_REMIND_BEFORE") or "P2D",
            escalate_after=env.get("CERTRAIL_ESCALATE_AFTER") or "P3D",
            holidays=holidays,
            base_url=(env.get("CERTRAIL_BASE_URL") or "http://127.0.0.1:5000").rstrip("/"),
        )
