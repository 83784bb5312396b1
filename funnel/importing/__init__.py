"""Bringing people in from CSV and taking them out again (export)."""
