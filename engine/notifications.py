"""E-mail to staff and certified persons, through an outbox.

A message is written to `notifications` in the same transaction as the change it reports
(a task assigned, a reminder, a certificate suspended), so it is sent if and only if the
change committed. The `send_notifications` job delivers queued messages by SMTP; with no
SMTP host configured it only logs them (status `logged`), which is the default on a laptop.
Delivery is at least once: a worker that dies between the SMTP hand-over and its commit
sends that message again on the next pass.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import TYPE_CHECKING, NamedTuple

from sqlalchemy import bindparam, or_, select
from sqlalchemy.orm import Session

from .models import Case, HumanTask, Notification, Person, User, UserRole
from .settings import SmtpSettings

if TYPE_CHECKING:
    from . import Engine

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6


def queue(
    session: Session,
    now: datetime,
    kind: str,
    recipient: str | None,
    subject: str,
    body: str,
    *,
    user_id: int | None = None,
    case_id: int | None = None,
    certificate_id: int | None = None,
    task_id: int | None = None,
) -> Notification | None:
    """Write one message to the outbox; None when the recipient has no address."""
    if not recipient:
        return None
    message = Notification(
        kind=kind,
        recipient=recipient,
        recipient_user_id=user_id,
        subject=subject[:300],
        body=body,
        case_id=case_id,
        certificate_id=certificate_id,
        task_id=task_id,
        created_at=now,
        status="queued",
        attempts=0,
        next_attempt_at=now,
    )
    session.add(message)
    return message


def notify_user(
    session: Session, now: datetime, user: User, kind: str, subject: str, body: str, **refs
):
    if not user.active:
        return None
    return queue(session, now, kind, user.email, subject, body, user_id=user.id, **refs)


# A session's memo of each person's account (id, address): the end of a case writes to the
# person several times in one unit of work.
_ACCOUNTS_OF_PEOPLE = "certrail_accounts_of_people"
_ACCOUNT_OF_PERSON = (
    select(User.id, User.email)
    .where(User.person_id == bindparam("person_id"))
    .order_by(User.id)
    .limit(1)
)


class _Account(NamedTuple):
    id: int
    email: str | None


def _account_column(column):
    return (
        select(column).where(User.person_id == Person.id).order_by(User.id).limit(1)
    ).scalar_subquery()


_PERSON_WITH_ACCOUNT = select(Person, _account_column(User.id), _account_column(User.email)).where(
    Person.id == bindparam("person_id")
)


def person_with_account(session: Session, person_id: int) -> Person | None:
    """The person, read in one statement with the account `notify_person` writes to."""
    found = session.execute(_PERSON_WITH_ACCOUNT, {"person_id": person_id}).first()
    if found is None:
        return None
    person, account_id, email = found
    accounts = session.info.setdefault(_ACCOUNTS_OF_PEOPLE, {})
    accounts[person.id] = _Account(account_id, email) if account_id is not None else None
    return person


def notify_person(
    session: Session, now: datetime, person: Person, kind: str, subject: str, body: str, **refs
):
    """The person's own account's address when they have one, else the address on record."""
    accounts = session.info.setdefault(_ACCOUNTS_OF_PEOPLE, {})
    if person.id not in accounts:
        accounts[person.id] = session.execute(_ACCOUNT_OF_PERSON, {"person_id": person.id}).first()
    account = accounts[person.id]
    address = (account.email if account is not None else None) or person.email
    return queue(
        session,
        now,
        kind,
        address,
        subject,
        body,
        user_id=account.id if account is not None else None,
        **refs,
    )


def notify_role(
    session: Session, now: datetime, role: str, kind: str, subject: str, body: str, **refs
) -> int:
    users = list(
        session.scalars(
            select(User).join(UserRole, UserRole.user_id == User.id).where(UserRole.role == role)
        )
    )
    return sum(1 for user in users if notify_user(session, now, user, kind, subject, body, **refs))


def notify_task_holder(
    session: Session, now: datetime, task: HumanTask, kind: str, subject: str, body: str
):
    """The person a task waits for: its assignee, or for an applicant's step the applicant."""
    refs = {"case_id": task.case_id, "task_id": task.id}
    if task.assignee_id is not None:
        user = session.get(User, task.assignee_id)
        return notify_user(session, now, user, kind, subject, body, **refs) if user else None
    if task.role == "applicant":
        case = session.get(Case, task.case_id)
        person = session.get(Person, case.person_id) if case and case.person_id else None
        return notify_person(session, now, person, kind, subject, body, **refs) if person else None
    return None


def notify_assigned(session: Session, now: datetime, task: HumanTask, user: User, base_url: str):
    due = f" It is due on {task.due_at:%d %b %Y}." if task.due_at else ""
    return notify_user(
        session,
        now,
        user,
        "task_assigned",
        f"Task assigned to you: {task.name}",
        f"The step '{task.name}' of case {task.case_id} has been assigned to you.{due}\n"
        f"{base_url}/tasks/{task.id}",
        case_id=task.case_id,
        task_id=task.id,
    )


# -- delivery ---------------------------------------------------------------------------------


def send_notifications(engine: Engine, limit: int = 50) -> int:
    """Deliver (or log) up to `limit` queued messages; returns how many were handled."""
    smtp_settings = engine.settings.smtp
    with engine.unit_of_work() as uow:
        query = (
            select(Notification)
            .where(
                Notification.status == "queued",
                or_(
                    Notification.next_attempt_at.is_(None), Notification.next_attempt_at <= uow.now
                ),
            )
            .order_by(Notification.id)
            .limit(limit)
        )
        if engine.db.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        batch = list(uow.session.scalars(query))
        if not batch:
            return 0
        if smtp_settings.host is None:
            for message in batch:
                log.info("mail to %s: %s", message.recipient, message.subject)
                message.status = "logged"
                message.sent_at = uow.now
            return len(batch)
        try:
            connection = _connect(smtp_settings)
        except (OSError, smtplib.SMTPException) as exc:
            for message in batch:
                _failed(message, uow.now, exc)
            return len(batch)
        try:
            for message in batch:
                try:
                    connection.send_message(_email(message, smtp_settings.sender))
                except smtplib.SMTPException as exc:
                    _failed(message, uow.now, exc)
                    continue
                message.status = "sent"
                message.sent_at = uow.now
                message.attempts += 1
        finally:
            try:
                connection.quit()
            except (OSError, smtplib.SMTPException):
                pass
        return len(batch)


def _connect(settings: SmtpSettings) -> smtplib.SMTP:
    if settings.ssl:
        connection: smtplib.SMTP = smtplib.SMTP_SSL(
            settings.host, settings.port, timeout=settings.timeout
        )
    else:
        connection = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        if settings.starttls:
            connection.starttls(context=ssl.create_default_context())
    if settings.username:
        connection.login(settings.username, settings.password or "")
    return connection


def _email(message: Notification, sender: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = message.recipient
    email["Subject"] = message.subject
    email["X-Certrail-Kind"] = message.kind
    email.set_content(message.body)
    return email


def _failed(message: Notification, now: datetime, exc: Exception) -> None:
    message.attempts += 1
    message.last_error = f"{type(exc).__name__}: {exc}"[:2000]
    if message.attempts >= MAX_ATTEMPTS:
        message.status = "failed"
        log.error(
            "mail to %s given up after %d attempts: %s", message.recipient, message.attempts, exc
        )
        return
    # 1, 2, 4, 8, 16 minutes: a short SMTP outage delays mail, it does not lose it.
    message.next_attempt_at = now + timedelta(minutes=2 ** (message.attempts - 1))
    log.warning("mail to %s failed (attempt %d): %s", message.recipient, message.attempts, exc)
