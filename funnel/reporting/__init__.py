"""The coach's figures: what the dashboard, stats.csv and the API's stats read."""
