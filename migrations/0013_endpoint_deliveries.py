"""A page of one webhook endpoint's deliveries (the API's list, the console's page) by
``(endpoint_id, id)`` instead of ``endpoint_id`` alone: a page was read either through the
endpoint's index (every delivery the endpoint has, sorted) or along the id order of every
endpoint's deliveries (those of other apps too), both growing with the history kept. The new
index replaces the old one, so a delivery's insert writes as many index entries as before.
Building it holds off writes to the table: on a large live database, apply this in a quiet
moment."""

OLD = 'webhookdelivery_endpoint_id'
INDEX = 'webhookdelivery_endpoint_id_id'


def up(migrator, db):
    db.execute_sql(f'CREATE INDEX IF NOT EXISTS "{INDEX}" ON "webhook_delivery" '
                   '("endpoint_id", "id")')
    db.execute_sql(f'DROP INDEX IF EXISTS "{OLD}"')


def down(migrator, db):
    db.execute_sql(f'CREATE INDEX IF NOT EXISTS "{OLD}" ON "webhook_delivery" ("endpoint_id")')
    db.execute_sql(f'DROP INDEX IF EXISTS "{INDEX}"')
