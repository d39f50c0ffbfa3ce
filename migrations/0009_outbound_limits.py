"""Fair share between apps: per-minute request counters, the action deliveries in flight per
app (``delivering_until``: set while a task sends one), and how far a webhook replay reaches
(``replay_until``: the replay is in flight until the endpoint has delivered up to it).

Frozen copy of the table as this migration creates it (see 0001)."""
from peewee import *  # noqa: F403


def up(migrator, db):
    class RateWindow(Model):
        key = CharField(max_length=300, primary_key=True)
        created_at = DateTimeField()
        window_start = DateTimeField()
        used = IntegerField(default=0)
        class Meta:
            database = db
            table_name = 'rate_window'

    db.create_tables([RateWindow])
    migrator.migrate(
        migrator.add_column('action_request', 'delivering_until', DateTimeField(null=True)),
        migrator.add_column('webhook_endpoint', 'replay_until', BigIntegerField(null=True)))


def down(migrator, db):
    migrator.migrate(migrator.drop_column('action_request', 'delivering_until'),
                     migrator.drop_column('webhook_endpoint', 'replay_until'))
    migrator.migrate(migrator.drop_table('rate_window'))
