"""`certrail serve-prod`: the web app under gunicorn with several workers, plus job workers.

Migrations run once, before anything serves. Then gunicorn (N web worker processes) and M
`certrail worker` processes start against the same database. Nothing they share lives in
process memory: sessions are signed cookies under one secret handed to every process, model
specs are cached per immutable version id, timers are claimed with SKIP LOCKED. A job worker
that dies is restarted; SIGTERM or SIGINT stops everything gracefully.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from .errors import CertrailError

log = logging.getLogger(__name__)
INSTANCE_DIR = Path(__file__).resolve().parent.parent / "instance"
STOP_GRACE_SECONDS = 30
RESTART_BACKOFF_SECONDS = (1, 2, 5, 10, 30)


def serve_production(
    database_url: str,
    *,
    host: str,
    port: int,
    web_workers: int,
    job_workers: int,
    threads: int = 4,
) -> int:
    if not database_url.startswith(("postgresql", "postgres")):
        raise CertrailError(
            "serve-prod runs on PostgreSQL: set DATABASE_URL=postgresql://user@host:5432/db"
        )
    if web_workers < 1 or job_workers < 0:
        raise CertrailError("--web-workers must be at least 1 and --job-workers at least 0")
    env = dict(os.environ, DATABASE_URL=database_url, CERTRAIL_SECRET_KEY=_secret_key())
    upgrade = subprocess.run(
        [sys.executable, "-m", "engine.cli", "--database", database_url, "db", "upgrade"],
        env=env,
    )
    if upgrade.returncode != 0:
        raise CertrailError("the database migration failed; nothing was started")

    web = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(web_workers),
            "--threads",
            str(threads),
            "--bind",
            f"{host}:{port}",
            "--graceful-timeout",
            str(STOP_GRACE_SECONDS),
            "--access-logfile",
            "-",
            "web.wsgi:app",
        ],
        env=env,
    )
    jobs = [_start_job_worker(env, n) for n in range(job_workers)]
    restarts = [0] * job_workers
    stopping = False

    def _stop(signum, _frame):
        nonlocal stopping
        log.info("received %s: stopping web and job workers", signal.Signals(signum).name)
        stopping = True

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stopping:
            if web.poll() is not None:
                log.error("gunicorn exited with %s; stopping", web.returncode)
                break
            for n, job in enumerate(jobs):
                if job.poll() is not None:
                    delay = RESTART_BACKOFF_SECONDS[
                        min(restarts[n], len(RESTART_BACKOFF_SECONDS) - 1)
                    ]
                    log.warning(
                        "job worker %d (pid %d) exited with %s; restarting in %d s",
                        n + 1,
                        job.pid,
                        job.returncode,
                        delay,
                    )
                    time.sleep(delay)
                    restarts[n] += 1
                    jobs[n] = _start_job_worker(env, n)
            time.sleep(0.5)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop_all([web, *jobs])
    return 0 if stopping else (web.returncode or 1)


def _start_job_worker(env: dict[str, str], n: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "--database", env["DATABASE_URL"], "worker"],
        env=env,
    )
    log.info("job worker %d started (pid %d)", n + 1, process.pid)
    return process


def _stop_all(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _secret_key() -> str:
    """One session secret for every web worker: from CERTRAIL_SECRET_KEY, else the
    installation's instance/secret_key (created once, atomically)."""
    if os.environ.get("CERTRAIL_SECRET_KEY"):
        return os.environ["CERTRAIL_SECRET_KEY"]
    path = INSTANCE_DIR / "secret_key"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))
    return path.read_text().strip()
