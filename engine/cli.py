"""The `certrail` command: database, demo data, model lint, audit verification, simulation,
API tokens, background jobs, overdue steps, consistency check, backup and
restore, exam item analysis, records retention, the accreditation evidence pack.

Operators and tools rely on these names, options and JSON keys. Failures print one line per
problem and exit non-zero; they never print a traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import CertrailError


def _engine(args: argparse.Namespace):
    from . import Engine

    return Engine(args.database)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from .migrate import upgrade

    engine = _engine(args)
    upgrade(engine.db)
    created = engine.sync_models()
    print(f"database at revision head; {len(created)} model version(s) published")
    return 0


def cmd_demo_load(args: argparse.Namespace) -> int:
    from .demo import DEMO_PASSWORD, load_demo, load_demo_cases
    from .demo_history import load_demo_history
    from .item_analyses import load_demo_item_analysis

    engine = _engine(args)
    engine.sync_models()
    with engine.unit_of_work() as uow:
        counts = load_demo(uow)
    counts["cases"] = load_demo_cases(engine)
    counts["certificate histories"] = load_demo_history(engine, DEMO_PASSWORD)
    counts["item analyses"] = load_demo_item_analysis(engine)
    print("demo data: " + ", ".join(f"{v} new {k}" for k, v in counts.items()))
    return 0


def cmd_models_lint(args: argparse.Namespace) -> int:
    from .catalog import BPMN_DIR
    from .forms import FormRegistry
    from .lint import lint_files

    forms = FormRegistry()
    shipped = sorted(BPMN_DIR.glob("*.bpmn"))
    paths = [Path(p) for p in args.paths] or shipped
    known = {p.stem for p in shipped}
    findings = list(forms.findings) + lint_files(paths, forms, known, context=shipped)
    errors = [f for f in findings if f.severity == "error"]
    if args.json:
        print(json.dumps({"ok": not errors, "findings": [f.as_dict() for f in findings]}, indent=2))
    else:
        for finding in findings:
            print(finding)
        print(
            f"{len(paths)} model(s), {len(forms.names())} form(s): {len(errors)} error(s), {len(findings) - len(errors)} warning(s)"
        )
    return 1 if errors else 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from .audit import verify_chain

    engine = _engine(args)
    with engine.sessions() as session:
        result = verify_chain(session)
    if args.json:
        print(
            json.dumps(
                {
                    "ok": result.ok,
                    "events_checked": result.events_checked,
                    "first_bad_seq": result.first_bad_seq,
                    "reason": result.reason,
                }
            )
        )
    elif result.ok:
        print(f"audit chain intact: {result.events_checked} event(s) verified")
    else:
        print(f"audit chain BROKEN at event {result.first_bad_seq}: {result.reason}")
    return 0 if result.ok else 1


def cmd_simulate(args: argparse.Namespace) -> int:
    from .demo import load_demo
    from .simulation import simulate

    if args.cases < 1:
        raise CertrailError("--cases must be at least 1")
    engine = _engine(args)
    engine.sync_models()
    with engine.unit_of_work() as uow:
        load_demo(uow)
    result = simulate(engine, args.cases, scheme_code=args.scheme, stop_at=args.stop_at)
    if args.json:
        print(json.dumps(result.as_dict()))
    else:
        print(
            f"{result.cases_completed} case(s) completed, {result.tasks_completed} task(s), "
            f"{result.certificates_issued} certificate(s) in {result.seconds:.2f} s "
            f"({result.tasks_per_second:.0f} tasks/s)"
        )
    return 0


def cmd_tokens_issue(args: argparse.Namespace) -> int:
    from .accounts import issue_api_token

    name = args.name.strip()
    if not name or len(name) > 100:
        raise CertrailError("--name must be 1 to 100 characters")
    engine = _engine(args)
    with engine.unit_of_work() as uow:
        token = issue_api_token(uow, args.username, name)
    print(token)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from werkzeug.serving import run_simple

    from web import create_app

    from .scheduler import start_scheduler

    app = create_app({"DATABASE_URL": args.database})
    scheduler = start_scheduler(app.extensions["certrail"]) if not args.no_scheduler else None
    try:
        run_simple(args.host, args.port, app, threaded=True, use_reloader=False)
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=False)
    return 0


def cmd_serve_prod(args: argparse.Namespace) -> int:
    import os

    from .supervisor import serve_production

    _log_to_stderr()
    return serve_production(
        args.database or os.environ.get("DATABASE_URL", ""),
        host=args.host,
        port=args.port,
        web_workers=args.web_workers,
        job_workers=args.job_workers,
        threads=args.threads,
    )


def _log_to_stderr() -> None:
    import logging

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def cmd_worker(args: argparse.Namespace) -> int:
    from .worker import run_worker

    if args.interval <= 0:
        raise CertrailError("--interval must be positive")
    _log_to_stderr()
    engine = _engine(args)
    totals = run_worker(engine, args.interval, once=args.once)
    print(", ".join(f"{name}: {count}" for name, count in totals.items()))
    return 0


def _parse_now(value: str):
    from datetime import UTC, datetime

    try:
        now = datetime.fromisoformat(value)
    except ValueError:
        raise CertrailError(f"--now must be an ISO 8601 date and time, not '{value}'") from None
    if now.tzinfo is not None:
        now = now.astimezone(UTC).replace(tzinfo=None)
    return now


def cmd_jobs_run_once(args: argparse.Namespace) -> int:
    from . import Engine
    from .clock import Clock, FixedClock
    from .scheduler import run_jobs_until_idle

    clock = FixedClock(_parse_now(args.now)) if args.now else Clock()
    _log_to_stderr()
    engine = Engine(args.database, clock=clock)
    done = run_jobs_until_idle(engine)
    if args.json:
        print(json.dumps({"now": clock.now().isoformat(), "jobs": done}))
    else:
        for name, count in done.items():
            print(f"{name}: {count} as of {clock.now().isoformat()}")
    return 0


def cmd_overdue(args: argparse.Namespace) -> int:
    """Every overdue open step as of --now, most overdue first (for cron reports)."""
    from . import Engine
    from .clock import Clock, FixedClock
    from .dashboard import overdue_steps

    clock = FixedClock(_parse_now(args.now)) if args.now else Clock()
    engine = Engine(args.database, clock=clock)
    now = clock.now()
    with engine.sessions() as session:
        steps = list(overdue_steps(session, now))
    if args.json:
        print(
            json.dumps(
                {
                    "now": now.isoformat(),
                    "count": len(steps),
                    "steps": [step.as_report() for step in steps],
                }
            )
        )
        return 0
    for step in steps:
        print(
            f"case {step.case_id} {step.process}: {step.task_name} ({step.task_spec_id}), "
            f"{step.days_overdue} day(s) overdue since {step.due_at.isoformat(sep=' ')}; "
            f"assignee {step.assignee_username or 'none'}; person {step.person_name or '-'}"
            + (f"; certificate {step.certificate_number}" if step.certificate_number else "")
        )
    print(f"{len(steps)} overdue step(s) as of {now.isoformat()}")
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from .backup import backup
    from .db import make_engine

    made = backup(make_engine(args.database), Path(args.path), overwrite=args.force)
    print(f"{made.kind} backup written to {made.path} ({made.bytes:,} bytes)")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """Restore, then prove the restored record: audit chain intact, every case consistent."""
    from .audit import verify_chain
    from .backup import restore
    from .consistency import check
    from .db import make_engine

    restored = restore(make_engine(args.database), Path(args.path), force=args.force)
    engine = _engine(args)
    with engine.sessions() as session:
        chain = verify_chain(session)
    report = check(engine, engine.clock.now())
    ok = chain.ok and report.consistent
    if args.json:
        print(
            json.dumps(
                {
                    "ok": ok,
                    "restored_from": str(restored.path),
                    "audit_events_checked": chain.events_checked,
                    "audit_ok": chain.ok,
                    "consistency": report.as_dict(),
                }
            )
        )
    else:
        print(f"restored {restored.kind} backup {restored.path}")
        print(
            f"audit chain {'intact' if chain.ok else 'BROKEN: ' + chain.reason} "
            f"({chain.events_checked} event(s)); {report.cases} case(s) "
            + ("consistent" if report.consistent else f"{len(report.mismatches)} mismatch(es)")
        )
    return 0 if ok else 1


def cmd_check(args: argparse.Namespace) -> int:
    """Compare every case's stored workflow with its human tasks and timers, and every
    certificate with its history; exit 1 when anything disagrees."""
    from .consistency import check

    engine = _engine(args)
    report = check(engine, engine.clock.now())
    if args.json:
        print(json.dumps(report.as_dict()))
    else:
        for found in report.mismatches:
            where = f"case {found.case_id}" if found.case_id else f"certificate {found.certificate}"
            print(f"{where}: {found.kind}: {found.message}")
        print(
            f"{report.cases} case(s), {report.certificates} certificate(s) checked: "
            + ("consistent" if report.consistent else f"{len(report.mismatches)} mismatch(es)")
        )
    return 0 if report.consistent else 1


def cmd_items_analyze(args: argparse.Namespace) -> int:
    """Classical item analysis of one exam form's responses (ISO/IEC 17024 9.3)."""
    from .item_analysis import Thresholds, analyse, read_key, read_responses

    keys = read_key(_read_text(args.key)) if args.key else None
    responses = read_responses(_read_text(args.responses), keys)
    thresholds = Thresholds(
        min_p=args.min_p,
        max_p=args.max_p,
        min_rpb=args.min_rpb,
        min_reliability=args.min_reliability,
    )
    result = analyse(responses, thresholds, pass_mark=args.pass_mark)
    if args.json:
        print(json.dumps(result.as_dict(), sort_keys=False))
        return 0
    print(f"{'item':<20} {'p':>6} {'rpb':>7} {'rpb_rest':>9}  flags")
    for name, item in result.items.items():
        print(
            f"{name:<20} {item.p:6.3f} {_figure(item.rpb):>7} {_figure(item.rpb_rest):>9}  "
            + ", ".join(item.flags)
        )
    print(
        f"{result.candidates} candidates, mean {result.mean:.2f}, sd {result.sd:.2f}, "
        f"KR-20 {_figure(result.kr20)}, alpha {_figure(result.alpha)}, SEM {_figure(result.sem)}"
        + (f", pass rate {result.pass_rate:.1%}" if result.pass_rate is not None else "")
        + (f"; form flags: {', '.join(result.flags)}" if result.flags else "")
    )
    return 0


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise CertrailError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CertrailError(f"{path} is not UTF-8 text") from None


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def cmd_sod_explain(args: argparse.Namespace) -> int:
    from .impartiality.explain import explain

    engine = _engine(args)
    with engine.sessions() as session:
        answer = explain(session, args.case, args.task, args.user, engine.clock.now())
    if args.json:
        print(json.dumps({"allowed": answer["allowed"], "rules": answer["rules"]}))
    elif answer["allowed"]:
        print(f"{args.user} may take {args.task} of case {args.case} now")
    else:
        print(f"{args.user} may not take {args.task} of case {args.case}:")
        for rule in answer["rules"]:
            print(f"  {rule['rule']}: {rule['reason']}")
    return 0


def cmd_retention_list(args: argparse.Namespace) -> int:
    """Records past their scheme's retention period, not on legal hold (nothing is changed)."""
    from . import Engine
    from .clock import Clock, FixedClock
    from .retention import due_for_disposal

    clock = FixedClock(_parse_now(args.now)) if args.now else Clock()
    engine = Engine(args.database, clock=clock)
    now = clock.now()
    with engine.sessions() as session:
        due = due_for_disposal(session, now)
    if args.json:
        print(
            json.dumps(
                {
                    "now": now.isoformat(),
                    "count": len(due),
                    "records": [record.as_dict() for record in due],
                }
            )
        )
        return 0
    for record in due:
        proposed = f"; disposal proposed ({record.proposal.id})" if record.proposal else ""
        print(
            f"case {record.case_id} {record.process_id} ({record.status}), person "
            f"{record.person_id}, scheme {record.scheme_code or '-'}: ended "
            f"{record.ended_at:%Y-%m-%d}, kept {record.retention_months} months, due since "
            f"{record.due_on.isoformat()}{proposed}"
        )
    print(f"{len(due)} record(s) due for disposal as of {now.isoformat()}")
    return 0


def cmd_evidence_pack(args: argparse.Namespace) -> int:
    from datetime import date

    from .evidence_pack import build_pack

    dates = {}
    for option, value in (("--from", args.date_from), ("--to", args.date_to)):
        try:
            dates[option] = date.fromisoformat(value)
        except ValueError:
            raise CertrailError(f"{option} must be a date (YYYY-MM-DD), not '{value}'") from None
    out = Path(args.out)
    if out.exists() and not args.force:
        raise CertrailError(f"{out} exists; use --force to replace it")
    pack = build_pack(_engine(args), dates["--from"], dates["--to"])
    out.write_bytes(pack)
    print(
        f"evidence pack for {args.date_from} to {args.date_to} written to {out} ({len(pack):,} bytes)"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="certrail", description="Certrail certification workflow engine"
    )
    parser.add_argument(
        "--database", help="database URL (default: DATABASE_URL or instance/certrail.sqlite)"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    db = commands.add_parser("db", help="database schema").add_subparsers(
        dest="action", required=True
    )
    db.add_parser(
        "upgrade", help="create or migrate the schema and publish shipped models"
    ).set_defaults(func=cmd_db_upgrade)

    demo = commands.add_parser("demo", help="demo data").add_subparsers(
        dest="action", required=True
    )
    demo.add_parser(
        "load", help="load demo schemes, staff and applicants (idempotent)"
    ).set_defaults(func=cmd_demo_load)

    models = commands.add_parser("models", help="process models").add_subparsers(
        dest="action", required=True
    )
    lint = models.add_parser("lint", help="parse and validate models and forms")
    lint.add_argument("paths", nargs="*", help="BPMN files (default: every model in bpmn/)")
    lint.add_argument("--json", action="store_true")
    lint.set_defaults(func=cmd_models_lint)

    audit = commands.add_parser("audit", help="audit trail").add_subparsers(
        dest="action", required=True
    )
    verify = audit.add_parser("verify", help="recompute the hash chain")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(func=cmd_audit_verify)

    sim = commands.add_parser("simulate", help="run complete application cases through the engine")
    sim.add_argument("--cases", type=int, default=10)
    sim.add_argument("--scheme", default="CWI")
    sim.add_argument("--stop-at", dest="stop_at", metavar="TASK_ID")
    sim.add_argument("--json", action="store_true")
    sim.set_defaults(func=cmd_simulate)

    tokens = commands.add_parser("tokens", help="API tokens").add_subparsers(
        dest="action", required=True
    )
    issue = tokens.add_parser(
        "issue", help="issue a bearer token for USERNAME (printed once, stored only as a hash)"
    )
    issue.add_argument("username")
    issue.add_argument("--name", required=True, help="what the token is for (e.g. the client)")
    issue.set_defaults(func=cmd_tokens_issue)

    sod = commands.add_parser("sod", help="impartiality rules").add_subparsers(
        dest="action", required=True
    )
    explain = sod.add_parser("explain", help="may this user take this task now, and if not, why")
    explain.add_argument("--case", type=int, required=True)
    explain.add_argument("--task", required=True, metavar="TASK_ID")
    explain.add_argument("--user", required=True, metavar="USERNAME")
    explain.add_argument("--json", action="store_true")
    explain.set_defaults(func=cmd_sod_explain)

    worker = commands.add_parser(
        "worker", help="run the periodic jobs (timers) until SIGTERM/SIGINT; any number may run"
    )
    worker.add_argument("--interval", type=float, default=5.0, metavar="SECONDS")
    worker.add_argument("--once", action="store_true", help="one pass, then exit")
    worker.set_defaults(func=cmd_worker)

    jobs = commands.add_parser("jobs", help="periodic jobs").add_subparsers(
        dest="action", required=True
    )
    run_once = jobs.add_parser(
        "run-once", help="run every job once, as of --now (catching up after downtime)"
    )
    run_once.add_argument(
        "--now", metavar="ISO8601", help="the time to run as (UTC unless it has an offset)"
    )
    run_once.add_argument("--json", action="store_true")
    run_once.set_defaults(func=cmd_jobs_run_once)

    overdue = commands.add_parser(
        "overdue", help="list every overdue open step as of --now (for cron reports)"
    )
    overdue.add_argument(
        "--now", metavar="ISO8601", help="the time to report as (UTC unless it has an offset)"
    )
    overdue.add_argument("--json", action="store_true")
    overdue.set_defaults(func=cmd_overdue)

    backup = commands.add_parser(
        "backup", help="write a consistent copy of the database (SQLite file or pg_dump)"
    )
    backup.add_argument("path")
    backup.add_argument("--force", action="store_true", help="overwrite an existing file")
    backup.set_defaults(func=cmd_backup)

    restore = commands.add_parser(
        "restore", help="restore a backup, then verify the audit chain and every case"
    )
    restore.add_argument("path")
    restore.add_argument(
        "--force", action="store_true", help="replace a database that already has data"
    )
    restore.add_argument("--json", action="store_true")
    restore.set_defaults(func=cmd_restore)

    check = commands.add_parser(
        "check", help="find cases whose tasks, timers or certificates disagree with their state"
    )
    check.add_argument("--json", action="store_true")
    check.set_defaults(func=cmd_check)

    items = commands.add_parser("items", help="exam item analysis").add_subparsers(
        dest="items_command", required=True
    )
    analyze = items.add_parser(
        "analyze", help="difficulty, discrimination and reliability of one exam form"
    )
    analyze.add_argument("responses", help="CSV with columns candidate,item,score (0/1)")
    analyze.add_argument(
        "--key", help="answer key CSV (item,key) when RESPONSES has a response column"
    )
    analyze.add_argument("--pass-mark", type=float, help="raw total score needed to pass")
    analyze.add_argument("--min-p", type=float, default=0.2, help="flag items harder than this")
    analyze.add_argument("--max-p", type=float, default=0.9, help="flag items easier than this")
    analyze.add_argument(
        "--min-rpb", type=float, default=0.15, help="flag items discriminating less (rpb_rest)"
    )
    analyze.add_argument(
        "--min-reliability", type=float, default=0.8, help="flag forms with lower KR-20"
    )
    analyze.add_argument("--json", action="store_true")
    analyze.set_defaults(func=cmd_items_analyze)

    retention = commands.add_parser("retention", help="records retention").add_subparsers(
        dest="retention_command", required=True
    )
    due = retention.add_parser(
        "list", help="ended cases past their scheme's retention period (not on legal hold)"
    )
    due.add_argument("--now", metavar="ISO8601", help="the time to list as (UTC unless offset)")
    due.add_argument("--json", action="store_true")
    due.set_defaults(func=cmd_retention_list)

    pack = commands.add_parser(
        "evidence-pack", help="write the accreditation evidence pack (ZIP of CSV) for a period"
    )
    pack.add_argument("--from", dest="date_from", required=True, metavar="YYYY-MM-DD")
    pack.add_argument("--to", dest="date_to", required=True, metavar="YYYY-MM-DD")
    pack.add_argument("out", metavar="OUT.zip")
    pack.add_argument("--force", action="store_true", help="overwrite an existing file")
    pack.set_defaults(func=cmd_evidence_pack)

    prod = commands.add_parser(
        "serve-prod", help="migrate, then run gunicorn web workers and job workers (PostgreSQL)"
    )
    prod.add_argument("--host", default="127.0.0.1")
    prod.add_argument("--port", type=int, default=5000)
    prod.add_argument("--web-workers", type=int, default=4, help="gunicorn worker processes")
    prod.add_argument("--threads", type=int, default=4, help="threads per web worker")
    prod.add_argument("--job-workers", type=int, default=2, help="`certrail worker` processes")
    prod.set_defaults(func=cmd_serve_prod)

    serve = commands.add_parser("serve", help="run the web app and the scheduler in one process")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=5000)
    serve.add_argument(
        "--no-scheduler", action="store_true", help="leave timers to separate workers"
    )
    serve.set_defaults(func=cmd_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except CertrailError as exc:
        print(f"certrail: {exc.message}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - an operator gets one line, not a traceback
        print(f"certrail: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
