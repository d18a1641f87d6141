"""Schema migrations (Alembic), run from `certrail db upgrade` and at start-up of `make run`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(sql_engine: Engine, revision: str = "head") -> None:
    config = alembic_config()
    with sql_engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
