"""The dashboard's kept figures, declared once.

Everything a figure counts is named here: which provider events make up each
group (and the bit each group sets on its email), which sends are problems and
which of those the coach can retry, which email is credited with an unsubscribe
through our own link, and the keys each tally is kept by. The triggers that keep
the tallies are generated from this (``funnel.reporting.triggers``, frozen by a
migration); the dashboard, ``stats.csv`` and ``/api/v1/stats`` read the tallies.
"""

from __future__ import annotations

# Provider event kinds in each group, in the order the dashboard shows them;
# "blocked" (a temporary bounce) is in no group.
EVENT_GROUPS: dict[str, tuple[str, ...]] = {
    "delivered": ("delivered",),
    "opened": ("open",),
    "clicked": ("click",),
    "unsubscribed": ("unsubscribe", "group_unsubscribe"),
    "bounced": ("bounce", "dropped"),
    "complained": ("spamreport",),
}
GROUPS = tuple(EVENT_GROUPS)
KIND_GROUP: dict[str, str] = {kind: group for group, kinds in EVENT_GROUPS.items()
                              for kind in kinds}
# ``delivery.engaged`` holds one bit per group the email has had.
GROUP_BITS: dict[str, int] = {group: 1 << i for i, group in enumerate(EVENT_GROUPS)}
BITS: dict[str, int] = {kind: GROUP_BITS[group] for kind, group in KIND_GROUP.items()}
UNSUBSCRIBED_BIT = GROUP_BITS["unsubscribed"]

# Emails sent and engaged per day, kind and step (step_tally).
TALLY_COLUMNS = "day, kind, step_slug, sent, " + ", ".join(GROUP_BITS)
# Page views per day, page and origin (visit_tally).
VISIT_KEYS = "page, via, referrer_host, utm_source, utm_medium, utm_campaign"
# Failed and held sends per email, kind, state and error (problem_tally); "retryable":
# failed steps of the plan whose subscriber is confirmed (the panel's "Retry n").
PROBLEM_KEYS = "step_slug, kind, state, error"
# Consent records per day and action, with the same person's previous record of that
# action and where the person came from (consent_tally).
ORIGIN = ("utm_source", "referrer", "utm_medium", "utm_campaign", "arrived_via")
CONSENT_KEYS = "day, action, prev_day, " + ", ".join(ORIGIN) + ", signed_up"
# Events per day and group, and clicks per day, email and link, each with the same
# email's previous one: "emails opened in a period" counts each email once.
EVENT_KEYS = "day, event_group, prev_day"
LINK_KEYS = "day, step_slug, url, prev_day"
UNREPORTED_LINK = "(link not reported)"
# Unsubscribes through our own link, credited to the last email sent before them
# (unless system mail, or the provider already reported that unsubscribe).
CREDIT_KEYS = "day, step_slug"
# A change of a delivery that can move that credit.
CREDIT_CHANGE = (" OR ".join(f"{{o}}.{c} IS DISTINCT FROM {{n}}.{c}"
                             for c in ("state", "sent_at", "kind", "step_slug", "subscriber_id"))
                 + f" OR ({{o}}.engaged & {UNSUBSCRIBED_BIT}) <> ({{n}}.engaged & {UNSUBSCRIBED_BIT})")
# SQLite says IS DISTINCT FROM only from 3.39 (Ubuntu 22.04 has 3.37); IS NOT is the same there.
LITE_CREDIT_CHANGE = CREDIT_CHANGE.replace("IS DISTINCT FROM", "IS NOT")
# What the credited-email recount reads of a delivery (SQLite's OLD row spelt out).
DELIVERY_COLUMNS = "id, subscriber_id, kind, step_slug, state, sent_at, engaged"
