"""The coach's and operator's admin under /admin."""
