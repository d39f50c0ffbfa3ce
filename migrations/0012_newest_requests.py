"""An app's newest action requests (the console's actions page and overview) by ``(app_id,
created_at)`` instead of ``app_id`` alone: the newest were found by reading every request the
app ever made and sorting them. The new index replaces the old one, so a request's insert
writes as many index entries as before.
Building it holds off writes to the table: on a large live database, apply this in a quiet
moment."""

OLD = 'actionrequest_app_id'
INDEX = 'actionrequest_app_id_created_at'


def up(migrator, db):
    db.execute_sql(f'CREATE INDEX IF NOT EXISTS "{INDEX}" ON "action_request" '
                   '("app_id", "created_at")')
    db.execute_sql(f'DROP INDEX IF EXISTS "{OLD}"')


def down(migrator, db):
    db.execute_sql(f'CREATE INDEX IF NOT EXISTS "{OLD}" ON "action_request" ("app_id")')
    db.execute_sql(f'DROP INDEX IF EXISTS "{INDEX}"')
