"""App credential lifecycle and replay-safe connector actions: an app can be disabled
(``app.disabled_at``), and an action request made through the signed connector-actions endpoint
keeps the caller's request id (``action_request.external_id``, unique per app) so a repeated id
is answered with its first result instead of being performed again."""
from peewee import CharField, DateTimeField

INDEX = 'actionrequest_app_id_external_id'  # the name peewee gives the model's index


def up(migrator, db):
    migrator.migrate(
        migrator.add_column('app', 'disabled_at', DateTimeField(null=True)),
        migrator.add_column('action_request', 'external_id', CharField(max_length=200, null=True)),
        migrator.add_index('action_request', ('app_id', 'external_id'), True, name=INDEX),
    )


def down(migrator, db):
    migrator.migrate(
        migrator.drop_index('action_request', INDEX),
        migrator.drop_column('action_request', 'external_id'),
        migrator.drop_column('app', 'disabled_at'),
    )
