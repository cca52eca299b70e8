"""Test helpers that run real things: private service instances, hub processes, receivers,
a traffic driver and the delivery ledger. Used by ``tests/reliability``; nothing starts at import.
"""
