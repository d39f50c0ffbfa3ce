"""The host side of connector plugins: the contract they implement, which are installed, the
provider OAuth flow, the client lifecycle, rate budgets and the one way to call a plugin."""
