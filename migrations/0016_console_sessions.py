"""Console sign-ins kept on the server: the session cookie names one (by a random token whose
hash is stored), so signing out ends it for every copy of the cookie, not only in the browser
that signed out. Cookies signed before this migration name none and are signed out.

Frozen copy of the table as this migration creates it (see 0001)."""
from peewee import *  # noqa: F403


def up(migrator, db):
    class App(Model):
        id = CharField(primary_key=True, max_length=36)
        class Meta:
            database = db
            table_name = 'app'

    class ConsoleSession(Model):
        token_hash = CharField(max_length=64, primary_key=True)
        created_at = DateTimeField()
        app = ForeignKeyField(App, on_delete='CASCADE')
        expires_at = DateTimeField(index=True)
        class Meta:
            database = db
            table_name = 'console_session'

    db.create_tables([ConsoleSession])


def down(migrator, db):
    migrator.migrate(migrator.drop_table('console_session'))
