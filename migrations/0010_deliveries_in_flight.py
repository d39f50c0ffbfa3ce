"""An index of the action deliveries in flight, per app.

Every delivery take counts its app's requests being sent (``delivering_until`` in the future);
without this index that count read every request the app ever made through the
``(app_id, external_id)`` index, so a take grew slower with each action an app had triggered.
Partial: it holds only rows a task is sending (a released or finished request has no
``delivering_until``), so it stays a handful of rows whatever an app's history."""

INDEX = 'actionrequest_app_id_delivering_until'


def up(migrator, db):
    db.execute_sql(f'CREATE INDEX IF NOT EXISTS "{INDEX}" ON "action_request" '
                   '("app_id", "delivering_until") WHERE "delivering_until" IS NOT NULL')


def down(migrator, db):
    db.execute_sql(f'DROP INDEX IF EXISTS "{INDEX}"')
