"""Due work by app: the dispatchers take turns between apps, reading each app's
longest-waiting clients and action requests, so the indexes of due times lead with the app.
Each replaces the index of due times alone (nothing else reads them), so a write keeps one
index to update: connector_client's ``next_poll_at``, and action_request's ``next_attempt_at``
of PENDING requests (still partial). Each new index is built before the old one goes, so the
dispatchers always have one.
Building them holds off writes to the tables: on a large live database, apply this in a quiet
moment."""

INDEXES = [  # (table, old index, its columns, new index, its columns, where)
    ("connector_client", "connectorclient_next_poll_at", '"next_poll_at"',
     "connectorclient_app_id_next_poll_at", '"app_id", "next_poll_at"', ""),
    ("action_request", "actionrequest_next_attempt_at", '"next_attempt_at"',
     "actionrequest_app_id_next_attempt_at", '"app_id", "next_attempt_at"',
     " WHERE status = 'PENDING'"),
]


def up(migrator, db):
    for table, old, _, new, columns, where in INDEXES:
        db.execute_sql(f'CREATE INDEX IF NOT EXISTS "{new}" ON "{table}" ({columns}){where}')
        db.execute_sql(f'DROP INDEX IF EXISTS "{old}"')


def down(migrator, db):
    for table, old, columns, new, _, where in INDEXES:
        db.execute_sql(f'CREATE INDEX IF NOT EXISTS "{old}" ON "{table}" ({columns}){where}')
        db.execute_sql(f'DROP INDEX IF EXISTS "{new}"')
