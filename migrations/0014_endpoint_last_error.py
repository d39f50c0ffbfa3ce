"""A webhook endpoint's last error (``last_error``, ``last_error_at``): the error of its latest
failed attempt until one succeeds, shown with the endpoint (API and console). Two nullable
columns: no rewrite of the table."""
from peewee import DateTimeField, TextField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column('webhook_endpoint', 'last_error', TextField(null=True)),
        migrator.add_column('webhook_endpoint', 'last_error_at', DateTimeField(null=True)))


def down(migrator, db):
    migrator.migrate(migrator.drop_column('webhook_endpoint', 'last_error'),
                     migrator.drop_column('webhook_endpoint', 'last_error_at'))
