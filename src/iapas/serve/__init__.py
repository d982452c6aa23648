"""`iapas serve`: the HTTP API and browser page for inspection stations (FastAPI + uvicorn, extra `serve`).

Layout: `lines` (the loaded contexts), `workers` (bounded queue, one model worker per device), `answers`
(one upload -> the JSON answer), `metrics`, `limits` (size and token checks), `accesslog`, `page` and
`app` (the FastAPI application that ties them together).
"""
