"""Alembic environment for the Wiretrail store.

Run only through ``recorder.core.store.Store`` (no alembic.ini): the store puts an open SQLAlchemy
``Connection`` in ``config.attributes["connection"]`` and Alembic runs inside its transaction.
"""

from __future__ import annotations

from alembic import context

from recorder.core.schema import metadata

config = context.config


def _configure(**kwargs) -> None:
    context.configure(
        target_metadata=metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=True,
        **kwargs,
    )


if context.is_offline_mode():
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run Wiretrail migrations through recorder.core.store.Store.migrate()")
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
