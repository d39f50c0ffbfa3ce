"""The due action requests, as the dispatcher finds them: an index of PENDING requests only.

A request keeps the time it was due (``next_attempt_at``) after it is finished, so the index of
every request's due time held an app's whole history, and the dispatcher's "due and PENDING,
oldest first" walked it from the oldest finished request whenever the planner chose it (a
generic plan always did). Partial: a request leaves it when it leaves PENDING. The new index is
built before the old one goes, so the dispatcher always has one.
Building it holds off writes to the table: on a large live database, apply this in a quiet
moment."""

OLD = 'action_request_next_attempt_at'
INDEX = 'actionrequest_next_attempt_at'


def up(migrator, db):
    db.execute_sql(f'CREATE INDEX IF NOT EXISTS "{INDEX}" ON "action_request" '
                   """("next_attempt_at") WHERE status = 'PENDING'""")
    db.execute_sql(f'DROP INDEX IF EXISTS "{OLD}"')


def down(migrator, db):
    db.execute_sql(f'CREATE INDEX IF NOT EXISTS "{OLD}" ON "action_request" ("next_attempt_at")')
    db.execute_sql(f'DROP INDEX IF EXISTS "{INDEX}"')
