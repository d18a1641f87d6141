"""Schema migrations (Alembic), run from `certrail db upgrade` and at start-up of `make run`."""

from __future__ import annotations

import warnings
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine
from sqlalchemy.exc import SAWarning

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(sql_engine: Engine, revision: str = "head") -> None:
    config = alembic_config()
    with sql_engine.begin() as connection, warnings.catch_warnings():
        # SQLite cannot reflect expression indexes (case search's prefix indexes); batch
        # migrations reflect tables and would warn about each one, though nothing is lost.
        warnings.filterwarnings(
            "ignore",
            message="Skipped unsupported reflection of expression-based index",
            category=SAWarning,
        )
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
