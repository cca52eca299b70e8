"""The hub's services: plain functions and workers over the store, wired by ``bootstrap``.

``ingest.accept`` (gateway -> store), ``routing.handle_decide`` (the router worker's handler),
``effects.apply_effects`` (a decision's effects as rows), ``scheduler.sweep`` / ``Scheduler``
(due deadlines -> events), ``errors`` (refusals the API renders as problem documents).
Nothing here connects at import time.
"""
