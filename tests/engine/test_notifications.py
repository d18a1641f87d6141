"""E-mail goes through the outbox: written with the change, delivered by the sender job to a
real SMTP server (aiosmtpd, started by the test), logged when no SMTP host is configured, and
kept for later attempts while the server is down."""

from __future__ import annotations

import socket
from dataclasses import replace
from datetime import timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from engine.models import Notification
from engine.notifications import MAX_ATTEMPTS, send_notifications
from engine.settings import Settings, SmtpSettings
from tests.engine.helpers import do, drive_to_decision, start_application


class Inbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes

        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server():
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, inbox
    finally:
        controller.stop()


def with_smtp(engine, port: int) -> None:
    engine.settings = replace(
        engine.settings,
        smtp=SmtpSettings(host="127.0.0.1", port=port, sender="office@certrail.example"),
    )


def outbox(engine) -> list[Notification]:
    with engine.sessions() as session:
        return list(session.scalars(select(Notification).order_by(Notification.id)))


def certify_alice(engine) -> int:
    case_id = start_application(engine, "alice", "CWI")
    drive_to_decision(engine, case_id)
    do(engine, case_id, "decide_certification")
    return case_id


def test_certificate_issue_mails_the_holder_through_a_real_smtp_server(engine, smtp_server):
    controller, inbox = smtp_server
    with_smtp(engine, controller.port)
    certify_alice(engine)

    queued = [n for n in outbox(engine) if n.kind == "certificate_issued"]
    assert [n.recipient for n in queued] == ["alice@example.org"]
    assert queued[0].status == "queued"

    assert send_notifications(engine) >= 1
    received = {msg["Subject"]: (to, msg) for to, msg in inbox.messages}
    subject = queued[0].subject
    assert subject in received, list(received)
    to, message = received[subject]
    assert to == ["alice@example.org"]
    assert message["From"] == "office@certrail.example"
    assert "valid from" in message.get_payload()
    assert {n.status for n in outbox(engine)} == {"sent"}
    assert send_notifications(engine) == 0  # nothing is sent twice


def test_assigning_a_task_mails_the_assignee(engine, smtp_server):
    controller, inbox = smtp_server
    with_smtp(engine, controller.port)
    case_id = start_application(engine, "alice", "CWI")
    do(engine, case_id, "submit_application", "alice")
    [task] = engine.ready_tasks(case_id)
    engine.assign(task.id, "manager", "clerk")

    send_notifications(engine)
    assigned = [(to, m) for to, m in inbox.messages if m["X-Certrail-Kind"] == "task_assigned"]
    assert [to for to, _m in assigned] == [["clerk@certrail.example"]]
    assert f"/tasks/{task.id}" in assigned[0][1].get_payload()


def test_without_an_smtp_host_messages_are_logged_not_lost(engine):
    engine.settings = Settings()
    certify_alice(engine)
    assert send_notifications(engine) >= 1
    logged = [n for n in outbox(engine) if n.kind == "certificate_issued"]
    assert [n.status for n in logged] == ["logged"]


def test_a_down_smtp_server_delays_mail_with_back_off_and_gives_up_only_after_retries(
    engine, clock
):
    with_smtp(engine, free_port())  # nothing listens there
    certify_alice(engine)
    [message] = [n for n in outbox(engine) if n.kind == "certificate_issued"]

    assert send_notifications(engine) >= 1
    [message] = [n for n in outbox(engine) if n.id == message.id]
    assert message.status == "queued"
    assert message.attempts == 1
    assert message.last_error
    assert message.next_attempt_at == clock.now() + timedelta(minutes=1)
    assert send_notifications(engine) == 0  # not before its next attempt

    for _ in range(MAX_ATTEMPTS - 1):
        clock.set(clock.now() + timedelta(hours=1))
        send_notifications(engine)
    [message] = [n for n in outbox(engine) if n.id == message.id]
    assert message.status == "failed"
    assert message.attempts == MAX_ATTEMPTS


def test_settings_come_from_the_environment_and_bad_values_are_named():
    settings = Settings.from_env(
        {
            "CERTRAIL_SMTP_HOST": "mail.example.org",
            "CERTRAIL_SMTP_PORT": "587",
            "CERTRAIL_SMTP_STARTTLS": "1",
            "CERTRAIL_HOLIDAYS": "2026-12-25, 2026-12-26",
            "CERTRAIL_REMIND_BEFORE": "P1D",
        }
    )
    assert settings.smtp.host == "mail.example.org"
    assert settings.smtp.port == 587
    assert settings.smtp.starttls
    assert len(settings.holidays) == 2
    assert settings.remind_before == "P1D"
    from engine.errors import CertrailError

    with pytest.raises(CertrailError, match="CERTRAIL_SMTP_PORT"):
        Settings.from_env({"CERTRAIL_SMTP_PORT": "twenty-five"})
