"""Admin accounts and what each may do."""
