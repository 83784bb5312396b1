"""The marketer's control room: sends that failed or are held, alerts, and the worker's chores.

- ``failures``: failed and held sends, listed per email, and the retry;
- ``alerts``: the email to the admins when sends fail (from the worker);
- ``chores``: what a worker does after each drip pass besides the drip.
"""
