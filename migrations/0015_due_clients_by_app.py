"""Due clients by app: the dispatcher takes turns between apps, reading each app's
longest-waiting clients, so the index of due times leads with the app. It replaces the index
of due times alone (nothing else reads it), so a poll's write keeps one index to update. The
new index is built before the old one goes, so the dispatcher always has one.
Building it holds off writes to the table: on a large live database, apply this in a quiet
moment."""

OLD = 'connectorclient_next_poll_at'
INDEX = 'connectorclient_app_id_next_poll_at'


def up(migrator, db):
    db.execute_sql(f'CREATE INDEX IF NOT EXISTS "{INDEX}" ON "connector_client" '
                   '("app_id", "next_poll_at")')
    db.execute_sql(f'DROP INDEX IF EXISTS "{OLD}"')


def down(migrator, db):
    db.execute_sql(f'CREATE INDEX IF NOT EXISTS "{OLD}" ON "connector_client" ("next_poll_at")')
    db.execute_sql(f'DROP INDEX IF EXISTS "{INDEX}"')
