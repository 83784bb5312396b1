"""Demo data: a small believable list (seed) and a list of any size built inside
PostgreSQL (million)."""
