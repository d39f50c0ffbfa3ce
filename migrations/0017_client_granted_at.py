"""When the end user last consented (``connector_client.granted_at``): a poll refused under an
older grant is told from one refused under the grant in use. One nullable column: no rewrite
of the table."""
from peewee import DateTimeField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column('connector_client', 'granted_at', DateTimeField(null=True)))


def down(migrator, db):
    migrator.migrate(migrator.drop_column('connector_client', 'granted_at'))
