"""Locust scenario for bench/http_load.py: each simulated client completes ready tasks
through the REST API, one after another, with no think time.

The tasks (ids and valid form data) come from the JSON file named by CERTRAIL_LOAD_TASKS;
every client takes the next unused one, so no task is completed twice.
"""

from __future__ import annotations

import itertools
import json
import os

from locust import HttpUser, constant, task

TASKS = json.loads(open(os.environ["CERTRAIL_LOAD_TASKS"]).read())
TOKEN = os.environ["CERTRAIL_LOAD_TOKEN"]
_next = itertools.count()


class TaskCompleter(HttpUser):
    wait_time = constant(0)

    @task
    def complete_next_task(self) -> None:
        index = next(_next)
        if index >= len(TASKS):
            self.environment.runner.quit()
            return
        ready = TASKS[index]
        self.client.post(
            f"/api/v1/tasks/{ready['id']}/complete",
            json={"data": ready["data"]},
            headers={"Authorization": f"Bearer {TOKEN}"},
            name="POST /api/v1/tasks/{id}/complete",
        )
