"""Writing ORM rows with prepared Core statements on the task-completion path.

Every completion updates its case and its task and inserts the tasks that became ready.
Through the ORM's flush each of those writes cost more in bookkeeping than the statement
itself; here each is one cached Core statement, and the objects stay in the session as if
the ORM had written them (clean, persistent, their attributes set), so the rest of the unit
of work keeps using them as usual.

On PostgreSQL an update of a row under its case's lock may also be *deferred*: it is kept
on the connection and sent inside the next statement that can carry it, as a data-modifying
WITH (the audit chain's head lock, see `execute_with_deferred`), which spares a round trip
per write. A deferred write is never overtaken: any other statement, a savepoint or the
commit sends the pending ones first; a rollback forgets them. Only engines set up by
`defer_writes_on` defer; on any other engine, and on SQLite, every update runs at once.
"""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    Select,
    Table,
    bindparam,
    event,
    func,
    insert,
    inspect,
    literal_column,
    select,
    update,
)
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError
from sqlalchemy.sql import visitors
from sqlalchemy.sql.expression import Insert, TableClause, TextClause, TextualSelect

from .models import Base

# Where a connection keeps its deferred writes, in its `info` (the DBAPI connection's).
_PENDING = "certrail_deferred_writes"
# A statement run with this execution option does not read rows a deferred write changes
# (it inserts new rows only), so it may go ahead of the pending writes.
INDEPENDENT_OF_DEFERRED = "certrail_independent_of_deferred"
_DEFERRING_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


@dataclass(frozen=True)
class _DeferredUpdate:
    table: Table
    row_id: int
    columns: tuple[str, ...]
    version_key: str | None
    params: dict[str, Any]


def insert_new(session: Session, objects: list[Base]) -> None:
    """INSERT new objects of one mapped class in one statement, their ids read back;
    they then belong to `session` as persistent, unchanged objects."""
    if not objects:
        return
    mapper = inspect(objects[0]).mapper
    table: Table = mapper.local_table
    columns = _insert_columns(table)
    rows = [{name: _value(obj, table, name) for name in columns} for obj in objects]
    ids = session.connection().execute(_insert(table), rows).scalars().all()
    for obj, row, new_id in zip(objects, rows, ids, strict=True):
        for name, value in row.items():
            setattr(obj, name, value)
        obj.id = new_id
        make_transient_to_detached(obj)
        session.add(obj)


def update_changed(session: Session, obj: Base, *, deferred: bool = False, **values: Any) -> None:
    """UPDATE the object's changed columns plus `values` in one statement; with a version
    column the row must still carry the version read (else StaleDataError, as the ORM's
    flush would raise) and the version moves on.

    `deferred`: the row is under its case's lock for this unit of work; on an engine that
    defers writes the statement waits for the next one that can carry it (a stale version
    then raises StaleDataError there, at the latest at the commit)."""
    state = inspect(obj)
    table: Table = state.mapper.local_table
    version = state.mapper.version_id_col
    # Only attributes set since the load can have changed (the session notes their old values).
    attrs = state.attrs
    changes = {
        key: attrs[key].value
        for key in list(state.committed_state)
        if key in table.c and key != "id" and attrs[key].history.has_changes()
    }
    changes.update(values)
    if not changes:
        return
    if session.new and any(table.c[key].foreign_keys for key in changes):
        session.flush()  # a row this one now points at is written first
    params: dict[str, Any] = {"row_id": obj.id}
    version_key = None
    if version is not None:
        version_key = version.key
        params["read_version"] = getattr(obj, version_key)
        changes[version_key] = params["read_version"] + 1
    columns = tuple(sorted(changes))
    connection = session.connection()
    if deferred and connection.engine in _DEFERRING_ENGINES:
        pending = connection.info.setdefault(_PENDING, [])
        if any(w.table is table and w.row_id == obj.id for w in pending):
            # One statement cannot update a row twice: the earlier write goes first.
            flush_deferred(connection)
            pending = connection.info.setdefault(_PENDING, [])
        pending.append(_DeferredUpdate(table, obj.id, columns, version_key, {**changes, **params}))
    else:
        statement = _update(table, columns, version_key)
        updated = connection.execute(statement, {**changes, **params}).rowcount
        if updated != 1:
            raise _stale(table, obj.id)
    for key, value in changes.items():
        set_committed_value(obj, key, value)


def flush_deferred(connection: Connection) -> None:
    """Send the connection's deferred writes now, one statement each, in order."""
    pending = connection.info.pop(_PENDING, None) or []
    for write in pending:
        statement = _update(write.table, write.columns, write.version_key)
        if connection.execute(statement, write.params).rowcount != 1:
            raise _stale(write.table, write.row_id)


def execute_with_deferred(
    connection: Connection, statement: Select, params: dict[str, Any] | None = None
) -> Row | None:
    """The first row of `statement` (a SELECT), run in one statement together with the
    connection's deferred writes, each a data-modifying WITH whose row count is checked
    (the counts follow the statement's own columns in the row)."""
    pending = connection.info.pop(_PENDING, None) or []
    if not pending:
        return connection.execute(statement, params).first()
    keys = tuple((w.table, w.columns, w.version_key) for w in pending)
    params = dict(params or {})
    params.update(
        (f"w{n}_{name}", value) for n, w in enumerate(pending) for name, value in w.params.items()
    )
    row = connection.execute(_carrying(statement, keys), params).first()
    if row is None:
        raise LookupError("the statement carrying the deferred writes returned no row")
    counts = row[-len(pending) :]
    for write, count in zip(pending, counts, strict=True):
        if count != 1:
            raise _stale(write.table, write.row_id)
    return row


def defer_writes_on(engine: Engine) -> None:
    """Let `engine` defer writes (PostgreSQL): pending ones are sent before any statement
    that might read them, before a savepoint and before the commit; a rollback drops them."""

    @event.listens_for(engine, "before_execute")
    def _send_pending_first(connection, statement, _multiparams, _params, options):
        if (
            _has_pending(connection)
            and not options.get(INDEPENDENT_OF_DEFERRED)
            and _may_read_pending(statement, connection.info[_PENDING])
        ):
            flush_deferred(connection)

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "savepoint")
    def _send_pending(connection, *_args):
        if _has_pending(connection):
            flush_deferred(connection)

    @event.listens_for(engine, "rollback")
    @event.listens_for(engine, "rollback_savepoint")
    def _forget_pending(connection, *_args):
        if _has_pending(connection):
            connection.info.pop(_PENDING, None)

    @event.listens_for(engine, "checkin")
    def _forget_on_return(_dbapi_connection, record):
        record.info.pop(_PENDING, None)

    _DEFERRING_ENGINES.add(engine)


def _may_read_pending(statement: Any, pending: list[_DeferredUpdate]) -> bool:
    """Whether `statement` might read a row the `pending` writes change. Known not to: an
    INSERT or a SELECT (without loader options, which could join more tables in) that names
    only other tables and holds no SQL text. Anything else is taken to read them."""
    if not isinstance(statement, (Insert, Select)) or statement._with_options:
        return True
    named = _TABLES_NAMED.get(statement)
    if named is None:
        named = _TABLES_NAMED[statement] = _tables_named(statement)
    return not named or any(write.table.name in named for write in pending)


def _tables_named(statement: Insert | Select) -> frozenset[str]:
    """The names of the tables `statement` reads or writes; empty when it holds SQL text
    (which may name any)."""
    names = set()
    for element in visitors.iterate(statement):
        if isinstance(element, TableClause):
            names.add(element.name)
        elif isinstance(element, (TextClause, TextualSelect)) or getattr(
            element, "is_literal", False
        ):
            return frozenset()
    return frozenset(names)


# Statements are built once where they run often: their table names are looked up once.
_TABLES_NAMED: weakref.WeakKeyDictionary[Any, frozenset[str]] = weakref.WeakKeyDictionary()


def _has_pending(connection: Connection) -> bool:
    # A connection lost mid-transaction is discarded with its `info`, and touching `info`
    # would try to reconnect it before SQLAlchemy has rolled back.
    return not connection.invalidated and bool(connection.info.get(_PENDING))


def _stale(table: Table, row_id: int) -> StaleDataError:
    return StaleDataError(f"{table.name} row {row_id} was changed by another unit of work")


def _value(obj: Base, table: Table, name: str) -> Any:
    """The value to insert: the one set on the object, else the column's constant default.
    A column whose default only the ORM or the server can compute must be set by the caller."""
    if name in obj.__dict__:
        return obj.__dict__[name]
    column = table.c[name]
    if column.default is not None and column.default.is_scalar:
        return column.default.arg
    if column.default is not None or column.server_default is not None:
        raise ValueError(f"{table.name}.{name} has a computed default: set it before inserting")
    return None


@functools.cache
def _insert_columns(table: Table) -> tuple[str, ...]:
    return tuple(column.key for column in table.columns if not column.primary_key)


@functools.cache
def _insert(table: Table):
    columns = _insert_columns(table)
    return (
        insert(table)
        .values({name: bindparam(name, type_=table.c[name].type) for name in columns})
        .returning(table.c.id, sort_by_parameter_order=True)
        .execution_options(**{INDEPENDENT_OF_DEFERRED: True})
    )


@functools.cache
def _update(table: Table, columns: tuple[str, ...], version_key: str | None, prefix: str = ""):
    criteria = [table.c.id == bindparam(f"{prefix}row_id")]
    if version_key is not None:
        criteria.append(table.c[version_key] == bindparam(f"{prefix}read_version"))
    return (
        update(table)
        .where(*criteria)
        .values({name: bindparam(f"{prefix}{name}", type_=table.c[name].type) for name in columns})
    )


@functools.lru_cache(maxsize=256)
def _carrying(statement: Select, keys: tuple[tuple[Table, tuple[str, ...], str | None], ...]):
    """`statement` with the updates `keys` as data-modifying WITHs (parameters prefixed
    `w<n>_`) and, as its last columns, how many rows each updated. Built once per shape, so
    SQLAlchemy's statement cache finds it."""
    ctes = [
        _update(table, columns, version_key, f"w{n}_")
        .returning(literal_column("1"))
        .cte(f"deferred_write_{n}")
        for n, (table, columns, version_key) in enumerate(keys)
    ]
    counts = [select(func.count()).select_from(cte).scalar_subquery() for cte in ctes]
    return statement.add_columns(*counts).add_cte(*ctes)
