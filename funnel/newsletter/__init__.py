"""The newsletter: one-off broadcasts to the list, sent by the same send step as the plan.

- ``audience``: who gets a broadcast (topics, status, pauses, the filter);
- ``scheduling``: schedule, cancel and report on broadcasts (the use cases);
- ``work``: the worker's broadcast piece (claim due recipients, hand them to the send step);
- ``archive``: the public, impersonal rendering for /newsletter and its Atom feed.
"""
