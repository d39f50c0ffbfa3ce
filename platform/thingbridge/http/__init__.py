"""HTTP helpers shared by provider clients and deliveries to app-chosen URLs."""
