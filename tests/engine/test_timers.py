"""BPMN timers run on the engine's clock: a timer row per waiting timer, fired when due."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from engine import Engine
from engine.demo import load_demo
from engine.models import Base, HumanTask, Timer
from engine.timers import fire_due_timers

NS = (
    'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
    'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"'
)


def user_task(task_id: str, name: str) -> str:
    return f"""
    <bpmn:userTask id="{task_id}" name="{name}">
      <bpmn:extensionElements><spiffworkflow:properties>
        <spiffworkflow:property name="role" value="clerk"/>
        <spiffworkflow:property name="form" value="completeness_check"/>
        <spiffworkflow:property name="due" value="P5D"/>
      </spiffworkflow:properties></bpmn:extensionElements>"""


WAITING_MODEL = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {NS} id="d" targetNamespace="http://certrail.example/bpmn">
  <bpmn:process id="waiting" name="Waiting" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:intermediateCatchEvent id="wait_30_days" name="30 days">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDuration>"P30D"</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>{user_task("after_wait", "After the wait")}
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait_30_days"/>
    <bpmn:sequenceFlow id="f2" sourceRef="wait_30_days" targetRef="after_wait"/>
    <bpmn:sequenceFlow id="f3" sourceRef="after_wait" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""

DEADLINE_MODEL = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {NS} id="d" targetNamespace="http://certrail.example/bpmn">
  <bpmn:process id="deadline" name="Deadline" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>{user_task("answer", "Answer")}
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:boundaryEvent id="too_late" name="10 days" attachedToRef="answer" cancelActivity="true">
      <bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDuration>"P10D"</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>{user_task("escalate", "Escalate")}
      <bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="answered"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="escalated"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="answer"/>
    <bpmn:sequenceFlow id="f2" sourceRef="answer" targetRef="answered"/>
    <bpmn:sequenceFlow id="f3" sourceRef="too_late" targetRef="escalate"/>
    <bpmn:sequenceFlow id="f4" sourceRef="escalate" targetRef="answered"/>
  </bpmn:process>
</bpmn:definitions>
"""


START_TIMER_MODEL = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {NS} id="d" targetNamespace="http://certrail.example/bpmn">
  <bpmn:process id="start_later" name="Starts later" isExecutable="true">
    <bpmn:startEvent id="start_on_date" name="On the first of April">
      <bpmn:outgoing>f1</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeDate>"2026-04-01T08:00:00+00:00"</bpmn:timeDate></bpmn:timerEventDefinition>
    </bpmn:startEvent>{user_task("annual_step", "Annual step")}
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start_on_date" targetRef="annual_step"/>
    <bpmn:sequenceFlow id="f2" sourceRef="annual_step" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""

REMINDER_CYCLE_MODEL = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions {NS} id="d" targetNamespace="http://certrail.example/bpmn">
  <bpmn:process id="weekly_reminders" name="Weekly reminders" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>{user_task("answer", "Answer")}
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:boundaryEvent id="weekly" name="Every week, twice" attachedToRef="answer" cancelActivity="false">
      <bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:timerEventDefinition><bpmn:timeCycle>"R2/P7D"</bpmn:timeCycle></bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>{user_task("chase", "Chase the answer")}
      <bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="answered"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:endEvent id="chased"><bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="answer"/>
    <bpmn:sequenceFlow id="f2" sourceRef="answer" targetRef="answered"/>
    <bpmn:sequenceFlow id="f3" sourceRef="weekly" targetRef="chase"/>
    <bpmn:sequenceFlow id="f4" sourceRef="chase" targetRef="chased"/>
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.fixture
def timer_engine(database, clock, tmp_path):
    _kind, sql = database
    (tmp_path / "waiting.bpmn").write_text(WAITING_MODEL)
    (tmp_path / "deadline.bpmn").write_text(DEADLINE_MODEL)
    (tmp_path / "start_later.bpmn").write_text(START_TIMER_MODEL)
    (tmp_path / "weekly_reminders.bpmn").write_text(REMINDER_CYCLE_MODEL)
    engine = Engine(sql_engine=sql, clock=clock, bpmn_dir=tmp_path)
    Base.metadata.create_all(sql)
    engine.sync_models()
    with engine.unit_of_work() as uow:
        load_demo(uow)
    return engine


def timers(engine: Engine, case_id: int) -> list[Timer]:
    with engine.sessions() as session:
        return list(session.scalars(select(Timer).where(Timer.case_id == case_id)))


def tasks(engine: Engine, case_id: int) -> dict[str, str]:
    with engine.sessions() as session:
        rows = session.scalars(select(HumanTask).where(HumanTask.case_id == case_id))
        return {row.task_spec_id: row.status for row in rows}


def test_waiting_timer_is_stored_with_its_fire_time_from_the_engine_clock(timer_engine, clock):
    case = timer_engine.start_case("waiting")

    [timer] = timers(timer_engine, case.case_id)
    assert timer.task_spec_id == "wait_30_days"
    assert timer.status == "waiting"
    assert timer.fire_at == clock.now() + timedelta(days=30)
    assert tasks(timer_engine, case.case_id) == {}


def test_timer_fires_exactly_when_due_and_the_case_moves_on(timer_engine, clock):
    case = timer_engine.start_case("waiting")
    start = clock.now()

    clock.set(start + timedelta(days=29, hours=23))
    assert fire_due_timers(timer_engine) == 0
    assert tasks(timer_engine, case.case_id) == {}

    clock.set(start + timedelta(days=30, seconds=1))
    assert fire_due_timers(timer_engine) == 1
    assert tasks(timer_engine, case.case_id) == {"after_wait": "ready"}
    [timer] = timers(timer_engine, case.case_id)
    assert timer.status == "fired"
    assert timer.fired_at == clock.now()
    assert fire_due_timers(timer_engine) == 0


def test_interrupting_deadline_cancels_the_open_task_and_escalates(timer_engine, clock):
    case = timer_engine.start_case("deadline")
    assert tasks(timer_engine, case.case_id) == {"answer": "ready"}
    assert [t.task_spec_id for t in timers(timer_engine, case.case_id)] == ["too_late"]

    clock.set(clock.now() + timedelta(days=10, minutes=1))
    assert fire_due_timers(timer_engine) == 1

    assert tasks(timer_engine, case.case_id) == {"answer": "cancelled", "escalate": "ready"}


def test_completing_the_task_in_time_cancels_its_deadline_timer(timer_engine, clock):
    case = timer_engine.start_case("deadline")
    [task] = timer_engine.ready_tasks(case.case_id)
    timer_engine.complete(task.id, "clerk", {"application_complete": True})

    [timer] = timers(timer_engine, case.case_id)
    assert timer.status == "cancelled"
    clock.set(clock.now() + timedelta(days=11))
    assert fire_due_timers(timer_engine) == 0
    assert timer_engine.case(case.case_id).status == "completed"


def test_a_timer_start_event_holds_the_case_until_its_date(timer_engine, clock):
    engine = timer_engine
    case = engine.start_case("start_later")
    [timer] = timers(engine, case.case_id)
    assert (timer.task_spec_id, timer.fire_at) == ("start_on_date", datetime(2026, 4, 1, 8, 0))
    assert tasks(engine, case.case_id) == {}

    clock.set(datetime(2026, 4, 1, 7, 59))
    assert fire_due_timers(engine) == 0
    clock.set(datetime(2026, 4, 1, 8, 1))
    assert fire_due_timers(engine) == 1
    assert tasks(engine, case.case_id) == {"annual_step": "ready"}


def test_a_reminder_cycle_fires_once_per_period_and_stops_after_its_repetitions(
    timer_engine, clock
):
    engine = timer_engine
    case = engine.start_case("weekly_reminders")
    start = clock.now()
    fired = []
    for day in range(1, 30):
        clock.set(start + timedelta(days=day, minutes=1))
        fired.append(fire_due_timers(engine))
    # Two repetitions, then one last pass that retires the exhausted cycle.
    assert [day for day, count in enumerate(fired, start=1) if count] == [7, 14, 21], fired
    with engine.sessions() as session:
        chases = session.scalars(
            select(HumanTask).where(
                HumanTask.case_id == case.case_id, HumanTask.task_spec_id == "chase"
            )
        ).all()
    assert len(chases) == 2  # the holder is chased twice, the answer is still awaited
    assert tasks(engine, case.case_id)["answer"] == "ready"
    assert [t.status for t in timers(engine, case.case_id)] == ["fired"]
