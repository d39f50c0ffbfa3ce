"""Events: the per-app counter and outbox, broker publisher cursors, webhooks and their
deliveries; existing apps gain the thingbridge.events scope.

Frozen copies of the tables as this migration creates them (see 0001)."""
from peewee import *  # noqa: F403


def up(migrator, db):
    class App(Model):
        id = CharField(primary_key=True, max_length=36)
        scopes = TextField()
        class Meta:
            database = db
            table_name = 'app'

    class EventCounter(Model):
        created_at = DateTimeField()
        app = ForeignKeyField(App, primary_key=True, on_delete='CASCADE')
        last_seq = BigIntegerField(default=0)
        class Meta:
            database = db
            table_name = 'event_counter'

    class Event(Model):
        id = BigAutoField()
        created_at = DateTimeField()
        app = ForeignKeyField(App, on_delete='CASCADE')
        seq = BigIntegerField()
        type = CharField(max_length=64)
        external_subject_id = CharField(max_length=255, null=True)
        data = TextField()
        class Meta:
            database = db
            table_name = 'event'
            indexes = ((('app', 'seq'), True),)

    class PublisherCursor(Model):
        created_at = DateTimeField()
        publisher = CharField(max_length=200)
        app = ForeignKeyField(App, on_delete='CASCADE')
        last_seq = BigIntegerField(default=0)
        lease_token = CharField(max_length=36, null=True)
        leased_until = DateTimeField(null=True)
        next_attempt_at = DateTimeField()
        failures = IntegerField(default=0)
        last_error = TextField(null=True)
        class Meta:
            database = db
            table_name = 'publisher_cursor'
            indexes = ((('publisher', 'app'), True),)

    class WebhookEndpoint(Model):
        id = CharField(primary_key=True, max_length=36)
        created_at = DateTimeField()
        app = ForeignKeyField(App, on_delete='CASCADE')
        url = TextField()
        description = CharField(max_length=500, default='')
        event_types = TextField()
        secrets = TextField()
        cursor = BigIntegerField(default=0)
        updated_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'webhook_endpoint'

    class WebhookDelivery(Model):
        id = BigAutoField()
        created_at = DateTimeField()
        endpoint = ForeignKeyField(WebhookEndpoint, on_delete='CASCADE')
        event = ForeignKeyField(Event, on_delete='CASCADE')
        seq = BigIntegerField()
        lane = CharField(max_length=255, default='')
        status = CharField(max_length=16, default='PENDING')
        attempts = IntegerField(default=0)
        next_attempt_at = DateTimeField()
        lease_token = CharField(max_length=36, null=True)
        leased_until = DateTimeField(null=True)
        last_status_code = IntegerField(null=True)
        last_error = TextField(null=True)
        finished_at = DateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'webhook_delivery'
            indexes = (
                (('endpoint', 'lane', 'status', 'seq'), False),
                (('status', 'next_attempt_at'), False),
            )

    class WebhookAttempt(Model):
        created_at = DateTimeField()
        delivery = ForeignKeyField(WebhookDelivery, on_delete='CASCADE')
        status_code = IntegerField(null=True)
        error = TextField(null=True)
        duration_ms = IntegerField()
        class Meta:
            database = db
            table_name = 'webhook_attempt'

    db.create_tables([EventCounter, Event, PublisherCursor, WebhookEndpoint, WebhookDelivery,
                      WebhookAttempt])
    App.update(scopes=App.scopes.concat(' thingbridge.events')).where(
        ~(App.scopes.contains('thingbridge.events'))).execute()


def down(migrator, db):
    for table in ('webhook_attempt', 'webhook_delivery', 'webhook_endpoint',
                  'publisher_cursor', 'event', 'event_counter'):
        migrator.migrate(migrator.drop_table(table))
    db.execute_sql("UPDATE app SET scopes = REPLACE(scopes, ' thingbridge.events', '')")
