"""Quality pages: the statistical review of exam forms (ISO/IEC 17024 9.3) and the
management analytics.

    GET  /quality/items                 quality.items            list and upload form
    POST /quality/items                 quality.upload_items     store an item analysis
    GET  /quality/items/<id>            quality.item_analysis    summary, items, charts
    GET  /quality/items/<id>.csv        quality.item_analysis_csv  the item table
    GET  /analytics                     quality.analytics        figures for a period
    GET  /analytics/<figure>.csv        quality.analytics_csv    one figure's rows
    GET  /quality/corrective-actions/new  quality.new_corrective_action  the form
    POST /quality/corrective-actions/new  quality.raise_corrective_action  open the case

Item analyses: quality managers and managers (they keep the statistical review of exams).
Analytics: managers, quality managers and administrators. A corrective action (ISO/IEC
17024 10.2.7) is raised by hand by whoever `engine.corrective_actions` allows. The statistics are computed in
`engine.item_analysis`, stored by `engine.item_analyses`, and the period's figures come from
`engine.analytics`; this module only turns them into pages, SVG charts and CSV files.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from typing import Any

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from engine import analytics as figures
from engine import item_analyses as stored
from engine.corrective_actions import RAISER_ROLES
from engine.errors import NotFoundError, ValidationError
from engine.item_analyses import MAX_FILE_BYTES, AnalysisUpload, record_item_analysis
from engine.item_analysis import Thresholds

from ..auth import engine, roles_required
from ..dashboard import _csv_text
from .charts import bar_list, column_chart, scatter_chart

bp = Blueprint("quality", __name__, template_folder="../templates")

ITEM_ROLES = ("quality_manager", "manager")
ANALYTICS_ROLES = ("manager", "quality_manager", "admin")
ANALYTICS_PARAMETERS = ("from", "to", "scheme")
FIGURES = ("cases", "decisions", "step-times", "overdue-steps", "appeals-complaints")
SLOWEST_STEPS = 15
ITEM_CSV_COLUMNS = ("item", "p", "rpb", "rpb_rest", "key", "flags", "options")
CORRECTIVE_ACTION_ROLES = tuple(sorted(RAISER_ROLES))
# The sources staff pick from (an internal audit raises its own when it is closed).
HAND_RAISED_SOURCES = {
    "complaint": "Complaint (case id)",
    "appeal": "Appeal (case id)",
    "incident": "Incident (incident id)",
    "other": "Other (optional reference)",
}


# -- item analysis ------------------------------------------------------------------------------


@bp.get("/quality/items")
@roles_required(*ITEM_ROLES)
def items():
    return _items_page()


def _items_page(error: ValidationError | None = None, status: int = 200):
    eng = engine()
    with eng.sessions() as session:
        analyses = stored.item_analyses(session)
        schemes = figures.scheme_codes(session)
    return (
        render_template(
            "quality/items.html",
            analyses=analyses,
            schemes=schemes,
            defaults=Thresholds(),
            form=request.form,
            error=error,
            max_megabytes=MAX_FILE_BYTES // (1024 * 1024),
        ),
        status,
    )


@bp.post("/quality/items")
@roles_required(*ITEM_ROLES)
def upload_items():
    try:
        upload = AnalysisUpload(
            exam_form=request.form.get("exam_form", ""),
            responses=_uploaded("responses", required=True),
            key=_uploaded("key", required=False),
            scheme_code=request.form.get("scheme") or None,
            pass_mark=_number("pass_mark", None),
            thresholds=Thresholds(
                min_p=_number("min_p", Thresholds.min_p),
                max_p=_number("max_p", Thresholds.max_p),
                min_rpb=_number("min_rpb", Thresholds.min_rpb),
                min_reliability=_number("min_reliability", Thresholds.min_reliability),
            ),
        )
        analysis = record_item_analysis(engine(), current_user.username, upload)
    except ValidationError as error:
        return _items_page(error, 400)
    flash(f"Item analysis of {analysis.exam_form} stored.", "success")
    return redirect(url_for("quality.item_analysis", analysis_id=analysis.id), code=303)


def _uploaded(name: str, *, required: bool) -> bytes | None:
    upload = request.files.get(name)
    if upload is None or not upload.filename:
        if required:
            raise ValidationError(f"choose the {name} file", {name: ["is required"]})
        return None
    data = upload.stream.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ValidationError(
            f"the {name} file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB",
            {name: ["is too large"]},
        )
    return data


def _number(name: str, default: float | None) -> float | None:
    text = (request.form.get(name) or "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ValidationError(f"{name} must be a number, not {text[:20]!r}", {name: ["a number"]})
    return value


@bp.get("/quality/items/<int:analysis_id>")
@roles_required(*ITEM_ROLES)
def item_analysis(analysis_id: int):
    with engine().sessions() as session:
        analysis, uploader, scheme = stored.item_analysis(session, analysis_id)
    result = analysis.result
    thresholds = result["thresholds"]
    rows = list(result["items"].items())
    keyed = any("options" in stats for _, stats in rows)
    return render_template(
        "quality/item_analysis.html",
        analysis=analysis,
        uploader=uploader,
        scheme=scheme,
        result=result,
        rows=rows,
        keyed=keyed,
        thresholds=thresholds,
        histogram=column_chart(*_difficulty_histogram(rows)),
        scatter_plot=scatter_chart(
            [
                (
                    stats["p"],
                    stats["rpb_rest"],
                    f"{item}: p {stats['p']:.2f}, rpb_rest {stats['rpb_rest']:.2f}",
                    bool(stats["flags"]),
                )
                for item, stats in rows
                if stats["rpb_rest"] is not None
            ],
            x_lines=(thresholds["min_p"], thresholds["max_p"]),
            y_lines=(thresholds["min_rpb"],),
        ),
    )


def _difficulty_histogram(rows: Sequence[tuple[str, dict]]) -> tuple[list[str], list]:
    """Items per tenth of difficulty p (the last bin holds p = 1)."""
    counts = [0] * 10
    for _, stats in rows:
        counts[min(9, int(stats["p"] * 10))] += 1
    labels = [f"{n / 10:.1f}–{(n + 1) / 10:.1f}" for n in range(10)]
    return labels, [("items", counts)]


@bp.get("/quality/items/<int:analysis_id>.csv")
@roles_required(*ITEM_ROLES)
def item_analysis_csv(analysis_id: int):
    with engine().sessions() as session:
        analysis, _uploader, _scheme = stored.item_analysis(session, analysis_id)
    rows = []
    for name, stats in analysis.result["items"].items():
        options = stats.get("options", {})
        rows.append(
            [
                _csv_text(name),
                repr(stats["p"]),
                _decimal(stats["rpb"]),
                _decimal(stats["rpb_rest"]),
                _csv_text(stats.get("key") or ""),
                ";".join(stats["flags"]),
                _csv_text(";".join(f"{o}={v['count']}" for o, v in options.items())),
            ]
        )
    return _csv_response(f"item-analysis-{analysis.id}.csv", ITEM_CSV_COLUMNS, rows)


def _decimal(value: float | None) -> str:
    return "" if value is None else repr(value)


# -- analytics ----------------------------------------------------------------------------------


def _analytics_query() -> figures.AnalyticsQuery:
    return figures.parse_query(request.args, engine().clock.now().date())


def _month_label(month) -> str:
    return f"{month:%b %y}"


@bp.get("/analytics")
@roles_required(*ANALYTICS_ROLES)
def analytics():
    query = _analytics_query()
    eng = engine()
    now = eng.clock.now()
    with eng.sessions() as session:
        cases = figures.cases_per_month(session, query)
        decisions = figures.certification_decisions(session, query)
        times = figures.median_time_per_step(session, query)
        overdue = figures.most_overdue_steps(session, query, now)
        received = figures.appeals_and_complaints(session, query)
        schemes = figures.scheme_codes(session)
    months = query.months
    labels = [_month_label(m) for m in months]
    case_schemes = sorted({c.scheme for c in cases})
    outcomes = figures.outcome_counts(received)
    return render_template(
        "quality/analytics.html",
        query=query,
        schemes=schemes,
        months=months,
        link=_analytics_link,
        started=column_chart(labels, _per_month(cases, months, case_schemes, "started")),
        completed=column_chart(labels, _per_month(cases, months, case_schemes, "completed")),
        totals={
            "started": sum(c.started for c in cases),
            "completed": sum(c.completed for c in cases),
        },
        decisions=column_chart(
            labels,
            [
                ("granted", _monthly(decisions, months, lambda d: d.granted)),
                ("refused", _monthly(decisions, months, lambda d: d.refused)),
            ],
        ),
        pass_rates=figures.pass_rates(decisions),
        times=times,
        step_times=bar_list(
            [
                (
                    f"{t.name}",
                    round(t.median_days, 1),
                    f"{t.process} · {t.name}: median {t.median_days:.1f} days over {t.completed}",
                )
                for t in times.steps[:SLOWEST_STEPS]
            ],
            unit=" d",
        ),
        overdue=overdue,
        overdue_chart=bar_list(
            [
                (
                    o.name,
                    o.overdue,
                    f"{o.process} · {o.name}: {o.overdue} overdue, {o.still_open} still open",
                )
                for o in overdue
            ]
        ),
        outcomes=outcomes,
        outcome_chart=bar_list(
            [
                (f"{c.kind} · {outcome.replace('_', ' ')}", n, f"{c.kind}s {outcome}: {n}")
                for c in outcomes
                for outcome, n in sorted(c.outcomes.items())
            ]
        ),
    )


def _per_month(
    cases: list[figures.CaseCount], months: list, schemes: list[str], measure: str
) -> list[tuple[str, list[int]]]:
    position = {m: i for i, m in enumerate(months)}
    series = []
    for scheme in schemes:
        values = [0] * len(months)
        for c in cases:
            if c.scheme == scheme and c.month in position:
                values[position[c.month]] += getattr(c, measure)
        series.append((scheme, values))
    return series


def _monthly(rows: Iterable, months: list, value) -> list[int]:
    position = {m: i for i, m in enumerate(months)}
    values = [0] * len(months)
    for row in rows:
        if row.month in position:
            values[position[row.month]] += value(row)
    return values


def _analytics_link(endpoint: str = "quality.analytics", **changes: Any) -> str:
    args = {k: v for k, v in request.args.items() if k in ANALYTICS_PARAMETERS and v}
    for key, value in changes.items():
        if value:
            args[key] = value
        else:
            args.pop(key, None)
    return url_for(endpoint, **args)


@bp.get("/analytics/<figure>.csv")
@roles_required(*ANALYTICS_ROLES)
def analytics_csv(figure: str):
    if figure not in FIGURES:
        abort(404, description=f"there is no figure {figure!r}; figures: {', '.join(FIGURES)}")
    query = _analytics_query()
    eng = engine()
    with eng.sessions() as session:
        columns, rows = _figure_rows(session, figure, query, eng.clock.now())
    period = f"{query.first_month:%Y%m}-{query.last_month:%Y%m}"
    return _csv_response(f"{figure}-{period}.csv", columns, rows)


def _figure_rows(session, figure: str, query: figures.AnalyticsQuery, now):
    if figure == "cases":
        return ("month", "scheme", "process", "started", "completed"), [
            [f"{c.month:%Y-%m}", _csv_text(c.scheme), c.process, c.started, c.completed]
            for c in figures.cases_per_month(session, query)
        ]
    if figure == "decisions":
        return ("month", "scheme", "granted", "refused", "pass_rate"), [
            [f"{d.month:%Y-%m}", _csv_text(d.scheme), d.granted, d.refused, _rate(d.pass_rate)]
            for d in figures.certification_decisions(session, query)
        ]
    if figure == "step-times":
        return ("process", "step", "name", "completed", "median_days"), [
            [t.process, t.step, _csv_text(t.name), t.completed, f"{t.median_days:.3f}"]
            for t in figures.median_time_per_step(session, query).steps
        ]
    if figure == "overdue-steps":
        return ("process", "step", "name", "overdue", "still_open"), [
            [o.process, o.step, _csv_text(o.name), o.overdue, o.still_open]
            for o in figures.most_overdue_steps(session, query, now)
        ]
    return ("case_id", "kind", "scheme", "received_at", "ended_at", "outcome"), [
        [
            r.case_id,
            r.kind,
            _csv_text(r.scheme),
            r.started_at.isoformat(sep=" ", timespec="seconds"),
            r.ended_at.isoformat(sep=" ", timespec="seconds") if r.ended_at else "",
            r.outcome,
        ]
        for r in figures.appeals_and_complaints(session, query)
    ]


def _rate(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _csv_response(filename: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return Response(
        buffer.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


# -- corrective actions raised by hand ----------------------------------------------------------


@bp.get("/quality/corrective-actions/new")
@roles_required(*CORRECTIVE_ACTION_ROLES)
def new_corrective_action():
    return _corrective_action_page(request.args)


@bp.post("/quality/corrective-actions/new")
@roles_required(*CORRECTIVE_ACTION_ROLES)
def raise_corrective_action():
    form = request.form
    source = (form.get("source") or "").strip()
    try:
        if source not in HAND_RAISED_SOURCES:
            raise ValidationError(
                "choose where the nonconformity was found",
                {"source": [f"must be one of: {', '.join(HAND_RAISED_SOURCES)}"]},
            )
        case_id = engine().raise_corrective_action(
            current_user.username,
            source,
            (form.get("reference") or "").strip() or None,
            form.get("description") or "",
        )
    except NotFoundError as error:
        return _corrective_action_page(
            form, ValidationError("the reference was not found", {"reference": [str(error)]}), 400
        )
    except ValidationError as error:
        return _corrective_action_page(form, error, 400)
    flash(f"Corrective action raised as case {case_id}.", "success")
    return redirect(url_for("cases.detail", case_id=case_id), code=303)


def _corrective_action_page(values, error: ValidationError | None = None, status: int = 200):
    return (
        render_template(
            "quality/corrective_action_new.html",
            sources=HAND_RAISED_SOURCES,
            values=values,
            error=error,
        ),
        status,
    )
