"""Leases on polls and action deliveries, and a due time for action deliveries.

A client or action request is held by the task that will work on it (``lease_token``,
``leased_until``), so a task redelivered by the broker or sent twice never runs beside the one
that holds it, and a task lost with its worker is sent again when the lease runs out. An
action request is due for delivery at ``next_attempt_at``: the API records it with the request
itself, and the dispatcher sends every due one, so no write depends on the broker being up."""
from peewee import CharField, DateTimeField

LEASED = ('connector_client', 'action_request')


def up(migrator, db):
    for table in LEASED:
        migrator.migrate(
            migrator.add_column(table, 'lease_token', CharField(max_length=36, null=True)),
            migrator.add_column(table, 'leased_until', DateTimeField(null=True)))
    migrator.migrate(
        migrator.add_column('action_request', 'next_attempt_at', DateTimeField(null=True)),
        migrator.add_index('action_request', ('next_attempt_at',)))


def down(migrator, db):
    migrator.migrate(
        migrator.drop_index('action_request', 'action_request_next_attempt_at'),
        migrator.drop_column('action_request', 'next_attempt_at'))
    for table in LEASED:
        migrator.migrate(migrator.drop_column(table, 'lease_token'),
                         migrator.drop_column(table, 'leased_until'))
