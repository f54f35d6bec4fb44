"""Serving: the predict contract, and the HTTP server that speaks it on Vertex AI and locally.

- `contract.py` — the one predict contract (request checks, model inputs, predictions), used by
  every server of the model;
- `server.py` — the HTTP server (an ASGI app; `http_server.py` runs it on uvicorn) with Vertex AI's
  custom-container routes (`AIP_HTTP_PORT`, `AIP_HEALTH_ROUTE`, `AIP_PREDICT_ROUTE`): one model
  from `AIP_STORAGE_URI` on Vertex AI, or whatever a local endpoint serves (by its traffic split)
  locally;
- `client.py` — one client, two transports (a URL or a Vertex AI endpoint), for the acceptance
  suite and the demo.

docs/serving.md describes the contract and why the model is served from a custom container.
"""
