"""Property: whatever the staff, their roles and conflicts, and whoever tries to act, no
completed decision was made by someone the rules bar (9.4: examined the candidate; 4.3:
declared conflict; 4.2: external; 6.1: no commitment; own case)."""

from __future__ import annotations

import itertools
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from engine import CertrailError
from engine.impartiality.register import declare_conflict, sign_commitment
from engine.models import ConflictOfInterest, HumanTask, User, UserRole
from tests.engine.helpers import form_data, start_application

STAFF_ROLES = ["clerk", "reviewer", "examiner", "invigilator", "decision_maker"]
_ids = itertools.count()

staff_member = st.fixed_dictionaries(
    {
        "roles": st.sets(st.sampled_from(STAFF_ROLES), min_size=1, max_size=3),
        "external": st.booleans(),
        "signed": st.booleans(),
        "conflict_with_applicant": st.booleans(),
    }
)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    staff=st.lists(staff_member, min_size=3, max_size=7),
    order_seed=st.randoms(use_true_random=False),
)
def test_no_completed_decision_is_made_by_a_barred_person(engine, staff, order_seed):
    run = next(_ids)
    applicant = engine.user("alice")
    names = []
    with engine.unit_of_work() as uow:
        admin = uow.session.scalars(select(User).where(User.username == "admin")).one()
        for n, member in enumerate(staff):
            user = User(
                username=f"p{run}_{n}",
                display_name=f"Staff {run}.{n}",
                is_external=member["external"],
                created_at=uow.now,
            )
            user.roles = [UserRole(role=r) for r in member["roles"]]
            uow.session.add(user)
            uow.session.flush()
            if member["signed"]:
                sign_commitment(uow, admin, user)
            if member["conflict_with_applicant"]:
                declare_conflict(
                    uow,
                    admin,
                    user,
                    applicant.person_id,
                    "colleague",
                    uow.now.date() - timedelta(days=1),
                )
            names.append(user.username)
    pool = names + ["clerk", "reviewer", "examiner2", "invigilator", "decider", "examiner_decider"]

    case_id = start_application(engine, "alice")
    for _ in range(30):
        ready = engine.ready_tasks(case_id)
        if not ready:
            break
        task = ready[0]
        data = form_data(engine, task.form)
        if task.form == "examiner_assignment":
            data["examiner"] = order_seed.choice(
                [n for n in pool if n.startswith("p")] + ["examiner_decider"]
            )
        candidates = ["alice"] if task.role == "applicant" else order_seed.sample(pool, len(pool))
        for username in candidates:
            try:
                engine.complete(task.id, username, data)
                break
            except CertrailError:
                continue
        else:
            break  # nobody may do this step: the case waits for a manager, which is allowed

    with engine.sessions() as session:
        done = {
            t.task_spec_id: t.completed_by_id
            for t in session.scalars(
                select(HumanTask).where(
                    HumanTask.case_id == case_id, HumanTask.status == "completed"
                )
            )
        }
        decider_id = done.get("decide_certification")
        if decider_id is None:
            return
        decider = session.get(User, decider_id)
        examined = {done.get(t) for t in ("administer_exam", "score_written", "score_practical")}
        assert decider_id not in examined
        assert not decider.is_external
        assert decider.person_id != applicant.person_id
        conflicts = session.scalars(
            select(ConflictOfInterest).where(
                ConflictOfInterest.staff_user_id == decider_id,
                ConflictOfInterest.person_id == applicant.person_id,
            )
        ).all()
        assert conflicts == []
