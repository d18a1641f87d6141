"""One unit of work: one transaction, its audit events, and the conversion of lost races
into ConflictError."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from types import TracebackType

from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from .audit import AuditLog
from .errors import ConflictError


class UnitOfWork:
    """`with UnitOfWork(...) as uow:` commits on success (audit events chained in last) and
    rolls back everything, audit events included, on any error."""

    def __init__(self, sessions: sessionmaker[Session], now: datetime):
        self._sessions = sessions
        self.now = now
        self.audit = AuditLog()
        self.session: Session
        self._after_commit: list[Callable[[], None]] = []

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the transaction has committed (never after a rollback)."""
        self._after_commit.append(callback)

    def restart(self) -> None:
        """Roll back everything done so far and begin again, forgetting pending events."""
        self.session.rollback()
        self.audit.pending.clear()
        self._after_commit.clear()
        self.session.begin()

    def __enter__(self) -> UnitOfWork:
        self.session = self._sessions()
        self.session.begin()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        try:
            if exc_type is None:
                try:
                    self.audit.flush(self.session)
                    self.session.commit()
                    self.audit.committed()
                    for callback in self._after_commit:
                        callback()
                except (StaleDataError, IntegrityError):
                    self.session.rollback()
                    raise ConflictError(
                        "someone else changed this case at the same moment; reload and try again"
                    ) from None
                except OperationalError as error:
                    self.session.rollback()
                    if _is_serialization_failure(error):
                        raise ConflictError(
                            "someone else changed this case at the same moment; reload and try again"
                        ) from None
                    raise
            else:
                self.session.rollback()
                if exc_type is not None and issubclass(exc_type, (StaleDataError, IntegrityError)):
                    raise ConflictError(
                        "someone else changed this case at the same moment; reload and try again"
                    ) from None
        finally:
            self.session.close()
        return False


def _is_serialization_failure(error: OperationalError) -> bool:
    code = getattr(getattr(error, "orig", None), "sqlstate", None)
    return code in ("40001", "40P01")
