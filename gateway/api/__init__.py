"""The HTTP API (/v1): registration, signed ingest, scoped reads, operations."""

from gateway.api.app import create_app

__all__ = ["create_app"]
