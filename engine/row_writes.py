"""Writing ORM rows with prepared Core statements on the task-completion path.

Every completion updates its case and its task and inserts the tasks that became ready.
Through the ORM's flush each of those writes cost more in bookkeeping than the statement
itself; here each is one cached Core statement, and the objects stay in the session as if
the ORM had written them (clean, persistent, their attributes set), so the rest of the unit
of work keeps using them as usual.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Table, bindparam, insert, inspect, update
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from .models import Base


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


def update_changed(session: Session, obj: Base, **values: Any) -> None:
    """UPDATE the object's changed columns plus `values` in one statement; with a version
    column the row must still carry the version read (else StaleDataError, as the ORM's
    flush would raise) and the version moves on."""
    state = inspect(obj)
    table: Table = state.mapper.local_table
    version = state.mapper.version_id_col
    changes = {
        attr.key: attr.value
        for attr in state.attrs
        if attr.key in table.c and attr.key != "id" and attr.history.has_changes()
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
    statement = _update(table, tuple(sorted(changes)), version_key)
    updated = session.connection().execute(statement, {**changes, **params}).rowcount
    if updated != 1:
        raise StaleDataError(f"{table.name} row {obj.id} was changed by another unit of work")
    for key, value in changes.items():
        set_committed_value(obj, key, value)


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
    )


@functools.cache
def _update(table: Table, columns: tuple[str, ...], version_key: str | None):
    criteria = [table.c.id == bindparam("row_id")]
    if version_key is not None:
        criteria.append(table.c[version_key] == bindparam("read_version"))
    return (
        update(table)
        .where(*criteria)
        .values({name: bindparam(name, type_=table.c[name].type) for name in columns})
    )
