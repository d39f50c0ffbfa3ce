"""App authentication: the OAuth2 token endpoint and the guards that check bearer tokens."""
