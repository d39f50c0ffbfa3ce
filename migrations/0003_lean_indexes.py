"""Drop foreign-key indexes that a unique composite index already starts with, and leave room
in property pages for in-place updates.

Every poll writes property values, events and its client row; each redundant index was one more
write per row for no read (the composite index answers every lookup by its first column).
PostgreSQL only: property pages are filled to 80 %, so a changed reading can usually be
updated in its own page without touching any index (a HOT update). That applies to pages
written from now on; an existing table gets it once rewritten (VACUUM FULL). DROP INDEX locks
each table while it runs: on a large live database, apply this in a quiet moment."""
from peewee import PostgresqlDatabase

REDUNDANT = {  # index -> (table, column) it was created on
    'component_thing_id': ('component', 'thing_id'),
    'property_component_id': ('property', 'component_id'),
    'action_component_id': ('action', 'component_id'),
    'thingmapping_client_id': ('thing_mapping', 'client_id'),
    'thing_app_id': ('thing', 'app_id'),
    'connectorclient_app_id': ('connector_client', 'app_id'),
    'event_app_id': ('event', 'app_id'),
}


def _postgres(db):
    return isinstance(db, PostgresqlDatabase)


def up(migrator, db):
    for index in REDUNDANT:
        db.execute_sql(f'DROP INDEX IF EXISTS "{index}"')
    if _postgres(db):
        db.execute_sql('ALTER TABLE property SET (fillfactor = 80)')


def down(migrator, db):
    for index, (table, column) in REDUNDANT.items():
        db.execute_sql(f'CREATE INDEX IF NOT EXISTS "{index}" ON "{table}" ("{column}")')
    if _postgres(db):
        db.execute_sql('ALTER TABLE property RESET (fillfactor)')
