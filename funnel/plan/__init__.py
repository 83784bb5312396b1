"""The free plan's material: the coach's identity, the pictures, and the plan as one document.

- ``coach``: the coach's identity from ``emails/coach.yml``;
- ``media``: pictures in ``emails/images/``, content-hashed and turned into PNG for email;
- ``document``: every email of the sequence grouped by week, for the printable page and its PDF.
"""
