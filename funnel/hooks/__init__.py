"""Outbound webhooks: telling the coach's other tools what happened, signed and reliably.

- ``events``: the event types and what each one carries.
- ``capture``: writes an outbox row for every event in the transaction that made it.
- ``addresses`` and ``post``: where we may connect to, and one bounded HTTP request.
- ``dispatch``: the worker's step that delivers the outbox, with retries for 24 hours.
- ``manage``: registering, listing and removing endpoints, and sending again.
No Flask in here.
"""
