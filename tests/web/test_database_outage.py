"""The database restarts while the app runs: requests fail cleanly (503, nothing changed)
and the app recovers by itself once the database is back.

The app reaches PostgreSQL through a TCP proxy that can cut every connection and refuse new
ones, which is what a server restart looks like from the application's side."""

from __future__ import annotations

import socket
import threading
from urllib.parse import quote, urlsplit

import pytest
from sqlalchemy import text

from engine import Engine
from engine.db import make_engine, normalise_url
from tests.conftest import PG_URL
from tests.engine.helpers import start_application
from tests.web.test_api import Api
from web import create_app

pytestmark = [pytest.mark.postgresql, pytest.mark.serial]


class RestartingDatabase:
    """A proxy in front of the database server; `stop()` cuts every connection and refuses
    new ones until `start()`."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = True
        self.open: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            server = socket.create_connection(self.target)
            with self.lock:
                self.open += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        self.up = False
        with self.lock:
            for end in self.open:
                try:
                    end.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.open.clear()

    def start(self) -> None:
        self.up = True

    def close(self) -> None:
        self.stop()
        self.listener.close()


@pytest.fixture
def proxied(engine, database):
    """The demo engine's database, reached only through the restartable proxy."""
    _kind, sql = database
    if _kind != "postgresql":
        pytest.skip("the outage is simulated in front of PostgreSQL")
    with sql.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    target = urlsplit(normalise_url(PG_URL))
    proxy = RestartingDatabase(target.hostname or "127.0.0.1", target.port or 5432)
    url = (
        f"{target.scheme}://{target.username}@127.0.0.1:{proxy.port}{target.path}"
        + "?options="
        + quote(f"-csearch_path={schema}")
    )
    proxied_sql = make_engine(url)
    yield Engine(sql_engine=proxied_sql, clock=engine.clock), proxy
    proxied_sql.dispose()
    proxy.close()


def test_requests_fail_cleanly_while_the_database_restarts_and_recover_after(proxied, engine):
    proxied_engine, database = proxied
    case_id = start_application(engine, "alice", "CWI")
    [task] = engine.ready_tasks(case_id)
    app = create_app({"ENGINE": proxied_engine, "TESTING": True})
    api = Api(app.test_client(), engine)
    assert api.get("/tasks", "alice").status_code == 200

    database.stop()
    listing = api.get("/tasks", "alice")
    assert listing.status_code == 503
    assert "database is not reachable" in listing.json["error"]
    assert listing.headers["Retry-After"] == "5"
    completion = api.post(f"/tasks/{task.id}/complete", "alice", json={"data": {}})
    assert completion.status_code == 503
    page = app.test_client().get("/login")
    assert page.status_code in (200, 503) and "Traceback" not in page.get_data(as_text=True)

    database.start()
    assert api.get("/tasks", "alice").status_code == 200
    assert [t.id for t in engine.ready_tasks(case_id)] == [task.id]  # nothing was changed
