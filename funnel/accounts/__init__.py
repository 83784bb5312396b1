"""Admin accounts: passwords, roles and the team."""
