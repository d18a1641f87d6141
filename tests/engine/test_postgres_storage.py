"""How PostgreSQL stores what Certrail writes: the case state, tens of KiB of JSON rewritten
at every step, is compressed with lz4 rather than the server's default, pglz."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from tests.engine.helpers import drive_to_scheduling, start_application

POSTGRESQL_ONLY = [pytest.param("postgresql", marks=pytest.mark.postgresql)]


@pytest.mark.parametrize("database", POSTGRESQL_ONLY, indirect=True)
def test_the_case_state_is_compressed_with_lz4(engine):
    case_id = start_application(engine)
    drive_to_scheduling(engine, case_id)

    with engine.db.connect() as conn:
        method, length = conn.execute(
            text("SELECT pg_column_compression(state), length(state) FROM cases WHERE id = :id"),
            {"id": case_id},
        ).one()
        default = conn.exec_driver_sql("SHOW default_toast_compression").scalar()

    assert length > 4_000  # well past the ~2 KiB row size at which the server compresses
    assert method == "lz4"
    assert default == "lz4"
