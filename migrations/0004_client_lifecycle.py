"""Client lifecycle: since when a client is in its status and when the provider was last asked;
OAuth states are deleted once used, so they no longer carry a used mark, and a consent waiting
for the app's confirmation holds its granted tokens (encrypted) until then."""
from peewee import DateTimeField, TextField


def up(migrator, db):
    migrator.migrate(
        migrator.add_column('connector_client', 'status_since', DateTimeField(null=True)),
        migrator.add_column('connector_client', 'last_polled_at', DateTimeField(null=True)),
    )
    # The best knowledge of an existing client's status time: its last change of any kind.
    db.execute_sql('UPDATE connector_client SET status_since = updated_at, '
                   'last_polled_at = last_success_at')
    # A used state can never be used again; consents still under way keep theirs.
    db.execute_sql('DELETE FROM oauth_state WHERE used_at IS NOT NULL')
    migrator.migrate(
        migrator.add_not_null('connector_client', 'status_since'),
        migrator.drop_column('oauth_state', 'used_at'),
        migrator.add_column('oauth_state', 'tokens', TextField(null=True)),
        migrator.add_column('oauth_state', 'token_expires_at', DateTimeField(null=True)),
    )


def down(migrator, db):
    # A consent waiting for the app's confirmation cannot be kept without its tokens.
    db.execute_sql('DELETE FROM oauth_state WHERE tokens IS NOT NULL')
    migrator.migrate(
        migrator.drop_column('oauth_state', 'token_expires_at'),
        migrator.drop_column('oauth_state', 'tokens'),
        migrator.add_column('oauth_state', 'used_at', DateTimeField(null=True)),
        migrator.drop_column('connector_client', 'last_polled_at'),
        migrator.drop_column('connector_client', 'status_since'),
    )
