"""The developer console: per-minute poll tallies per app and connector (the overview's last
hour), and a partial index that finds a client's own events (its status history) by subject
without touching the writes of thing events.

Frozen copy of the table as this migration creates it (see 0001)."""
from peewee import *  # noqa: F403

CLIENT_EVENTS = ("type IN ('connector.client.created', 'connector.client.status_changed', "
                 "'connector.client.deleted')")
INDEX = 'event_app_id_external_subject_id_seq'


def up(migrator, db):
    class App(Model):
        id = CharField(primary_key=True, max_length=36)
        class Meta:
            database = db
            table_name = 'app'

    class PollTally(Model):
        created_at = DateTimeField()
        app = ForeignKeyField(App, on_delete='CASCADE', index=False)
        type_id = CharField(max_length=100)
        minute = DateTimeField()
        succeeded = IntegerField(default=0)
        failed = IntegerField(default=0)
        class Meta:
            database = db
            table_name = 'poll_tally'
            indexes = ((('app', 'type_id', 'minute'), True),)

    db.create_tables([PollTally])
    db.execute_sql(f'CREATE INDEX IF NOT EXISTS "{INDEX}" ON "event" '
                   f'("app_id", "external_subject_id", "seq") WHERE {CLIENT_EVENTS}')


def down(migrator, db):
    db.execute_sql(f'DROP INDEX IF EXISTS "{INDEX}"')
    migrator.migrate(migrator.drop_table('poll_tally'))
