"""Action requests (PENDING until a terminal state) and the signatures on their deliveries."""
