"""`certrail serve-prod` (what `make serve-prod` runs): migrations, gunicorn with several web
workers and job workers on PostgreSQL; sessions hold across workers, a dead job worker is
restarted, a web worker killed mid-load loses and doubles nothing, and a stop signal ends
every process."""

from __future__ import annotations

import http.client
import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine import Engine
from engine.accounts import issue_api_token
from engine.audit import verify_chain
from engine.consistency import check
from engine.demo import DEMO_PASSWORD, load_demo
from engine.models import AuditEvent
from tests.cli.test_overdue_command import database_url
from tests.engine.helpers import cases_waiting_for_completeness_check

pytestmark = pytest.mark.serial

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def is_up(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); its state in /proc says it is gone
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ", 1)[1][:1] != "Z"


@pytest.mark.postgresql
def test_serve_prod_runs_web_and_job_workers_that_share_sessions(database, tmp_path):
    kind, sql = database
    if kind != "postgresql":
        pytest.skip("serve-prod runs on PostgreSQL")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "serve.log").open("w")
    env = {**os.environ, "CERTRAIL_SECRET_KEY": "serve-prod-test-secret"}
    server = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "--database", database_url(database)]
        + ["serve-prod", "--port", str(port), "--web-workers", "2", "--job-workers", "2"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    output = tmp_path / "serve.log"
    try:
        wait_for(lambda: is_up(base), what="the web workers")
        assert "database at revision head" in output.read_text()  # migrated the empty database
        with Engine(sql_engine=sql).unit_of_work() as uow:
            load_demo(uow)
        job_pids = wait_for(
            lambda: (
                [
                    int(p)
                    for p in re.findall(r"job worker \d started \(pid (\d+)\)", output.read_text())
                ][:2]
                if len(re.findall(r"job worker \d started", output.read_text())) >= 2
                else None
            ),
            what="two job workers",
        )

        jar = http.cookiejar.CookieJar()
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        login_page = browser.open(f"{base}/login").read().decode()
        token = re.search(r'name="csrf_token" value="([^"]+)"', login_page).group(1)
        form = urllib.parse.urlencode(
            {"csrf_token": token, "username": "clerk", "password": DEMO_PASSWORD, "next": ""}
        ).encode()
        browser.open(f"{base}/login", data=form).read()
        # Many requests spread over both web workers: every one sees the same signed-in user.
        for _ in range(20):
            page = browser.open(f"{base}/inbox").read().decode()
            assert "clerk" in page.lower() and "Log in" not in page

        os.kill(job_pids[0], signal.SIGKILL)
        wait_for(lambda: "restarting" in output.read_text(), timeout=15, what="the restart notice")
        wait_for(
            lambda: len(re.findall(r"job worker \d started", output.read_text())) >= 3,
            timeout=15,
            what="a replacement job worker",
        )
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) == 0
        log.close()
    started = [int(p) for p in re.findall(r"\(pid (\d+)\)", output.read_text())]
    assert started and not any(alive(pid) for pid in started)
    assert not is_up(base)


def complete_over_http(base: str, token: str, task: dict) -> int | None:
    """POST the completion; the status, or None when the connection broke mid-request."""
    request = urllib.request.Request(
        f"{base}/api/v1/tasks/{task['id']}/complete",
        data=json.dumps({"data": task["data"]}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as refused:
        return refused.code
    except (urllib.error.URLError, ConnectionError, http.client.HTTPException):
        return None


@pytest.mark.postgresql
def test_a_web_worker_killed_mid_load_loses_and_doubles_nothing(database, tmp_path):
    kind, sql = database
    if kind != "postgresql":
        pytest.skip("serve-prod runs on PostgreSQL")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    output = tmp_path / "serve.log"
    log = output.open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "--database", database_url(database)]
        + ["serve-prod", "--port", str(port), "--web-workers", "2", "--job-workers", "1"],
        cwd=ROOT,
        env={**os.environ, "CERTRAIL_SECRET_KEY": "kill-test"},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for(lambda: is_up(base), what="the web workers")
        engine = Engine(sql_engine=sql)
        with engine.unit_of_work() as uow:
            load_demo(uow)
            token = issue_api_token(uow, "clerk", "kill test")
        tasks = cases_waiting_for_completeness_check(engine, 60, "kill")
        statuses: dict[int, list[int | None]] = {t["id"]: [] for t in tasks}
        web_pids = [
            int(p) for p in re.findall(r"Booting worker with pid: (\d+)", output.read_text())
        ]

        def complete_share(share: list[dict]) -> None:
            for task in share:
                statuses[task["id"]].append(complete_over_http(base, token, task))

        threads = [threading.Thread(target=complete_share, args=(tasks[n::4],)) for n in range(4)]
        for thread in threads:
            thread.start()
        wait_for(lambda: sum(1 for s in statuses.values() if s) >= 15, what="a third done")
        os.kill(web_pids[0], signal.SIGKILL)  # gunicorn's master starts a new worker
        for thread in threads:
            thread.join()
        for task in tasks:  # a client whose request broke retries once
            if statuses[task["id"]][-1] is None:
                statuses[task["id"]].append(complete_over_http(base, token, task))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
        log.close()

    assert all(results[-1] in (200, 409) for results in statuses.values()), statuses
    with engine.sessions() as session:
        completed = dict(
            session.execute(
                select(AuditEvent.task_id, func.count())
                .where(AuditEvent.action == "task_completed")
                .where(AuditEvent.task_id.in_(list(statuses)))
                .group_by(AuditEvent.task_id)
            ).all()
        )
        assert verify_chain(session).ok
    assert completed == {task_id: 1 for task_id in statuses}  # none lost, none doubled
    assert check(engine, engine.clock.now()).consistent
