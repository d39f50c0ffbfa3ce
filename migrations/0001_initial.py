"""Initial schema: apps, tokens, connectors, things, actions.

Frozen copies of the models as they were at this migration (generated from a schema diff,
then encrypted/JSON columns written as the TEXT they are), so later model edits never change
what this migration does."""
from peewee import *  # noqa: F403


def up(migrator, db):
    class App(Model):
        id = CharField(primary_key=True, max_length=36)
        created_at = DateTimeField()
        name = CharField(max_length=200)
        client_id = CharField(unique=True, max_length=64)
        client_secret_hash = CharField()
        scopes = TextField(default='connctd.connector connctd.things.read connctd.things.action')
        callback_url = TextField(null=True)
        callback_token = CharField(unique=True, max_length=64)
        signing_key = TextField(null=True)
        class Meta:
            database = db
            table_name = 'app'
    db.create_tables([App])

    class AccessToken(Model):
        created_at = DateTimeField()
        token_hash = CharField(unique=True, max_length=64)
        app = ForeignKeyField(App, on_delete='CASCADE')
        scope = TextField(default='')
        expires_in = IntegerField()
        revoked = BooleanField(default=False)
        class Meta:
            database = db
            table_name = 'access_token'
    db.create_tables([AccessToken])

    class ConnectorInstance(Model):
        id = CharField(primary_key=True, max_length=36)
        created_at = DateTimeField()
        app = ForeignKeyField(App, on_delete='CASCADE')
        type_id = CharField(max_length=100)
        configuration = TextField()
        class Meta:
            database = db
            table_name = 'connector_instance'
            indexes = ((('app', 'type_id'), True),)
    db.create_tables([ConnectorInstance])

    class ConnectorClient(Model):
        id = CharField(primary_key=True, max_length=36)
        created_at = DateTimeField()
        app = ForeignKeyField(App, on_delete='CASCADE')
        instance = ForeignKeyField(ConnectorInstance, on_delete='RESTRICT')
        type_id = CharField(max_length=100)
        external_subject_id = CharField()
        configuration = TextField(null=True)
        status = CharField(max_length=16, default='STARTING')
        status_reason = TextField(null=True)
        tokens = TextField(null=True)
        token_expires_at = DateTimeField(null=True)
        next_poll_at = DateTimeField(index=True, null=True)
        last_success_at = DateTimeField(null=True)
        failure_count = IntegerField(default=0)
        updated_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'connector_client'
            indexes = ((('app', 'type_id', 'external_subject_id'), True),)
    db.create_tables([ConnectorClient])

    class Thing(Model):
        id = CharField(primary_key=True, max_length=36)
        created_at = DateTimeField()
        app = ForeignKeyField(App, on_delete='CASCADE')
        external_subject_id = CharField()
        created_by = ForeignKeyField(App, column_name='created_by', on_delete='CASCADE')
        connector_client = ForeignKeyField(ConnectorClient, null=True, on_delete='SET NULL')
        name = CharField(default='')
        manufacturer = CharField(default='')
        display_type = CharField(default='')
        main_component_id = CharField(max_length=200)
        status = CharField(max_length=16, default='AVAILABLE')
        attributes = TextField(default=dict)
        updated_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'thing'
            indexes = ((('app', 'external_subject_id'), False),)
    db.create_tables([Thing])

    class Component(Model):
        created_at = DateTimeField()
        thing = ForeignKeyField(Thing, on_delete='CASCADE')
        component_id = CharField(max_length=200)
        name = CharField(default='')
        component_type = CharField(default='')
        capabilities = TextField(default=list)
        position = IntegerField(default=0)
        class Meta:
            database = db
            table_name = 'component'
            indexes = ((('thing', 'component_id'), True),)
    db.create_tables([Component])

    class Action(Model):
        created_at = DateTimeField()
        component = ForeignKeyField(Component, on_delete='CASCADE')
        action_id = CharField(max_length=200)
        parameters = TextField(default=list)
        position = IntegerField(default=0)
        class Meta:
            database = db
            table_name = 'action'
            indexes = ((('component', 'action_id'), True),)
    db.create_tables([Action])

    class ActionRequest(Model):
        id = CharField(primary_key=True, max_length=36)
        created_at = DateTimeField()
        app = ForeignKeyField(App, on_delete='CASCADE')
        external_subject_id = CharField()
        thing = ForeignKeyField(Thing, on_delete='CASCADE')
        component_id = CharField(max_length=200)
        action_id = CharField(max_length=200)
        parameters = TextField(default=dict)
        status = CharField(index=True, max_length=16, default='PENDING')
        error = TextField(null=True)
        deadline = DateTimeField()
        attempts = IntegerField(default=0)
        updated_at = DateTimeField()
        class Meta:
            database = db
            table_name = 'action_request'
    db.create_tables([ActionRequest])

    class ConnectorDescription(Model):
        id = IntegerField(primary_key=True)
        created_at = DateTimeField()
        type_id = CharField(unique=True, max_length=100)
        name = CharField(max_length=200)
        description = TextField(default='')
        logo = TextField(default='')
        sample_instance_configuration = TextField(default=dict)
        sample_client_configuration = TextField(default=dict)
        class Meta:
            database = db
            table_name = 'connector_description'
    db.create_tables([ConnectorDescription])

    class OAuthState(Model):
        state_hash = CharField(primary_key=True, max_length=64)
        created_at = DateTimeField()
        client = ForeignKeyField(ConnectorClient, on_delete='CASCADE')
        redirect_uri = TextField()
        code_verifier = TextField(null=True)
        expires_at = DateTimeField()
        used_at = DateTimeField(null=True)
        class Meta:
            database = db
            table_name = 'oauth_state'
    db.create_tables([OAuthState])

    class Property(Model):
        created_at = DateTimeField()
        component = ForeignKeyField(Component, on_delete='CASCADE')
        property_id = CharField(max_length=200)
        name = CharField(default='')
        value = TextField(default='')
        unit = CharField(max_length=64, default='')
        type = CharField(max_length=16, default='STRING')
        property_type = CharField(default='')
        last_update = DateTimeField()
        position = IntegerField(default=0)
        class Meta:
            database = db
            table_name = 'property'
            indexes = ((('component', 'property_id'), True),)
    db.create_tables([Property])

    class RateBudget(Model):
        instance = ForeignKeyField(ConnectorInstance, primary_key=True, on_delete='CASCADE')
        created_at = DateTimeField()
        window_start = DateTimeField()
        used = IntegerField(default=0)
        class Meta:
            database = db
            table_name = 'rate_budget'
    db.create_tables([RateBudget])

    class ThingMapping(Model):
        created_at = DateTimeField()
        client = ForeignKeyField(ConnectorClient, on_delete='CASCADE')
        connector_thing_id = CharField()
        thing = ForeignKeyField(Thing, unique=True, on_delete='CASCADE')
        class Meta:
            database = db
            table_name = 'thing_mapping'
            indexes = ((('client', 'connector_thing_id'), True),)
    db.create_tables([ThingMapping])


def down(migrator, db):
    migrator.migrate(migrator.drop_table('thing_mapping'))
    migrator.migrate(migrator.drop_table('rate_budget'))
    migrator.migrate(migrator.drop_table('property'))
    migrator.migrate(migrator.drop_table('oauth_state'))
    migrator.migrate(migrator.drop_table('connector_description'))
    migrator.migrate(migrator.drop_table('action_request'))
    migrator.migrate(migrator.drop_table('action'))
    migrator.migrate(migrator.drop_table('component'))
    migrator.migrate(migrator.drop_table('thing'))
    migrator.migrate(migrator.drop_table('connector_client'))
    migrator.migrate(migrator.drop_table('connector_instance'))
    migrator.migrate(migrator.drop_table('access_token'))
    migrator.migrate(migrator.drop_table('app'))
