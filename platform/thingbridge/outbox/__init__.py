"""The event system: the outbox written with every change, and everything that reads it
(webhooks, broker publishers, retention), with the backoff and lease they share."""
