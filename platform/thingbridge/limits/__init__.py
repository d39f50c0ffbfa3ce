"""Fair share between apps: per-app limits that answer 429 with Retry-After."""
