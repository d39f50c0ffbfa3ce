"""The connctd thing model as a service: reading things, and a poll's compare-then-write sync."""
