"""Admin accounts: passwords."""
