"""The load: each user POSTs one instance per request to the predict route, in a closed loop.

Runs inside locust (its own venv), configured by the environment `loadtest.run` sets:
LOADTEST_PATH (the predict route, or a Vertex AI endpoint's `:rawPredict`), LOADTEST_INSTANCES
(a JSON file of instances, sent in turn) and LOADTEST_TOKEN (a bearer token, for Vertex AI).
A request fails unless it is answered 200 with one prediction.
"""

from __future__ import annotations

import itertools
import json
import os

from locust import FastHttpUser, constant, task

PATH = os.environ.get("LOADTEST_PATH", "/predict")
HEADERS = {"Content-Type": "application/json"}
if os.environ.get("LOADTEST_TOKEN"):
    HEADERS["Authorization"] = f"Bearer {os.environ['LOADTEST_TOKEN']}"
with open(os.environ["LOADTEST_INSTANCES"], encoding="utf-8") as handle:
    BODIES = [json.dumps({"instances": [instance]}) for instance in json.load(handle)]


class PredictUser(FastHttpUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        self.bodies = itertools.cycle(BODIES)

    @task
    def predict(self) -> None:
        with self.client.post(
            PATH, data=next(self.bodies), headers=HEADERS, name="predict", catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
            elif len(json.loads(response.text).get("predictions", [])) != 1:
                response.failure("not one prediction for one instance")
