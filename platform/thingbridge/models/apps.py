"""Apps (OAuth2 clients of the platform) and the bearer tokens issued to them."""

from __future__ import annotations

import datetime
import hashlib
import secrets

from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin
from peewee import (
    BooleanField,
    CharField,
    DateTimeField,
    ForeignKeyField,
    IntegerField,
    TextField,
)

from thingbridge.auth import secret_hash
from thingbridge.crypto import LazyEncryptedJSONField
from thingbridge.db import utcnow
from thingbridge.models.base import BaseModel, UUIDKey

# thingbridge.events (event feed and webhooks) is ours; the legacy contract has no events.
ALL_SCOPES = ("connctd.connector", "connctd.things.read", "connctd.things.action",
              "thingbridge.events")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class App(BaseModel, ClientMixin):
    id = UUIDKey()
    name = CharField(max_length=200)
    client_id = CharField(max_length=64, unique=True)
    client_secret_hash = CharField(max_length=255)
    scopes = TextField(default=" ".join(ALL_SCOPES))
    callback_url = TextField(null=True)
    # The unguessable path segment of this app's connector action endpoint.
    callback_token = CharField(max_length=64, unique=True,
                               default=lambda: secrets.token_urlsafe(32))
    # HMAC key signing action deliveries to callback_url; encrypted, shown once.
    # Left out of reads that do not sign (APP_PLAIN), read when used.
    signing_key = LazyEncryptedJSONField(null=True)
    # A disabled app's tokens are revoked and it gets no new ones until enabled again.
    disabled_at = DateTimeField(null=True)

    @classmethod
    def register(cls, name: str, scopes=ALL_SCOPES) -> tuple[App, str]:
        """Create an app; the plain secret is returned once and stored hashed."""
        secret = secrets.token_urlsafe(32)
        app = cls.create(name=name, client_id=secrets.token_hex(16),
                         client_secret_hash=secret_hash.make(secret),
                         scopes=" ".join(scopes))
        return app, secret

    @classmethod
    def signing_in(cls, client_id: str) -> App | NoApp:
        """The active app ``client_id`` names (a disabled app signs in nowhere), else a NoApp,
        whose secret check costs the same."""
        app = cls.select(*APP_PLAIN).where(
            (cls.client_id == client_id) & cls.disabled_at.is_null()).first() \
            if client_id else None
        return app or NoApp()

    @property
    def scope_list(self) -> list[str]:
        return self.scopes.split()

    # authlib ClientMixin: only the client_credentials grant is offered.
    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        return None

    def get_allowed_scope(self, scope):
        if not scope:
            return self.scopes
        return " ".join(s for s in scope.split() if s in self.scope_list)

    def check_redirect_uri(self, redirect_uri):
        return False

    def counted(self, right: bool) -> None:
        """Spend the check's outcome from its count (``credentials.signing_in`` sets it)."""

    def check_client_secret(self, client_secret):
        right = secret_hash.matches(self.client_secret_hash, client_secret)
        self.counted(right)
        if not right:
            return False
        if secret_hash.outdated(self.client_secret_hash):
            # The new form is the secret's SHA-256: a sign-in racing this one stores the same.
            stored = secret_hash.make(client_secret)
            App.update(client_secret_hash=stored).where(
                (App.id == self.id) & (App.client_secret_hash == self.client_secret_hash)
            ).execute()
            self.client_secret_hash = stored
        return True

    def check_endpoint_auth_method(self, method, endpoint):
        return method in ("client_secret_basic", "client_secret_post")

    def check_response_type(self, response_type):
        return False

    def check_grant_type(self, grant_type):
        return grant_type == "client_credentials"


# Every App column but the encrypted signing key: what reads that do not sign select (sign-in,
# a token's app, the console, an action's trigger), so an app whose key no configured key
# decrypts still signs in and sees what its deliveries say.
APP_PLAIN = [field for field in App._meta.sorted_fields if field is not App.signing_key]


class NoApp(ClientMixin):
    """Stands in for a client id that names no active app: its secret check runs a hash
    check like an app's and always fails, so neither the time taken nor the answer tells an
    existing client id from an unknown one."""

    def counted(self, right: bool) -> None:
        """As ``App.counted``."""

    def check_client_secret(self, client_secret):
        secret_hash.matches(secret_hash.NO_SECRET, client_secret)
        self.counted(False)
        return False

    def check_endpoint_auth_method(self, method, endpoint):
        return True


class AccessToken(BaseModel, TokenMixin):
    token_hash = CharField(max_length=64, unique=True)
    app = ForeignKeyField(App, backref="tokens", on_delete="CASCADE")
    scope = TextField(default="")
    expires_in = IntegerField()
    revoked = BooleanField(default=False)

    def expires_at(self) -> datetime.datetime:
        return self.created_at + datetime.timedelta(seconds=self.expires_in)

    # authlib TokenMixin
    def check_client(self, client):
        return client.id == self.app_id

    def get_scope(self):
        return self.scope

    def get_expires_in(self):
        return self.expires_in

    def is_expired(self):
        return utcnow() >= self.expires_at()

    def is_revoked(self):
        return self.revoked


class ConsoleSession(BaseModel):
    """A console sign-in. The cookie carries a random token naming it (stored hashed, as
    access tokens are), so signing out deletes it for every copy of the cookie; it ends at
    ``expires_at`` (THINGBRIDGE_CONSOLE_SESSION_LIFETIME after sign-in), and with its app."""
    token_hash = CharField(max_length=64, primary_key=True)
    app = ForeignKeyField(App, on_delete="CASCADE")
    expires_at = DateTimeField(index=True)
