"""The hub's store: SQLAlchemy models, migrations, sealing, the audit chain."""
