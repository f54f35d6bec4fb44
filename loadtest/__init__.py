"""The load test a serving endpoint passes before promotion: locust against the stack's SLO.

- `locustfile.py` — the load (runs in locust's own venv, `.venv-locust`, made by the Makefile:
  locust's pins clash with the project's lock);
- `run.py` — runs locust headless against an endpoint for the stack's `serving.load_test`
  settings, judges its figures against the SLO and reports (`make loadtest ENDPOINT=…`).
"""
