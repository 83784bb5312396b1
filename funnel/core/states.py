"""Every value a state, action or kind column may hold, in one place.

The models turn each set into a CHECK constraint, so the database refuses a
misspelt state as surely as the code would. ``StrEnum`` members compare equal to
their strings, so rows read back as plain text still match.
"""

from __future__ import annotations

from enum import StrEnum


class SubscriberStatus(StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


class DeliveryKind(StrEnum):
    DRIP = "drip"             # a step of the sequence
    BROADCAST = "broadcast"   # a one-off newsletter; step_slug is its slug
    SYSTEM = "system"         # confirmation and "already on the list" emails


class DeliveryState(StrEnum):
    QUEUED = "queued"     # waiting for the worker (system mail)
    SENDING = "sending"   # an intent, written before the transport is called
    SENT = "sent"
    RETRY = "retry"       # a temporary failure; tried again after a backoff
    HELD = "held"         # cannot be rendered now (a broken email file); waits for the fix
    FAILED = "failed"
    UNKNOWN = "unknown"   # a worker died mid-send: never resent, so never twice


# A send still to settle, and one that is settled for good.
UNSETTLED = (DeliveryState.QUEUED, DeliveryState.SENDING, DeliveryState.RETRY, DeliveryState.HELD)
SETTLED = (DeliveryState.SENT, DeliveryState.FAILED, DeliveryState.UNKNOWN)


class ConsentAction(StrEnum):
    SIGNUP = "signup"
    CONFIRM = "confirm"
    WITHDRAW = "withdraw"
    IMPORT = "import"


class EventKind(StrEnum):
    """Provider events we keep (SendGrid's names; a temporary bounce is "blocked")."""

    DELIVERED = "delivered"
    OPEN = "open"
    CLICK = "click"
    BOUNCE = "bounce"
    DROPPED = "dropped"
    SPAMREPORT = "spamreport"
    UNSUBSCRIBE = "unsubscribe"
    GROUP_UNSUBSCRIBE = "group_unsubscribe"
    BLOCKED = "blocked"


class MachineEventKind(StrEnum):
    """Opens and clicks no person made (funnel/core/machine_events.py)."""

    OPEN = "open"
    CLICK = "click"


class TagSource(StrEnum):
    """Who added a tag to a subscriber (kept with the tag, shown on their page)."""

    IMPORT = "import"   # the CSV import's ``tags`` column
    ADMIN = "admin"     # the admin's subscriber page
    API = "api"         # PATCH /api/v1/subscribers/{id}
    CLI = "cli"         # flask --app funnel tags add
    RULE = "rule"       # an automation rule's ``add_tag``


class EnrollmentState(StrEnum):
    """A subscriber's place in one sequence (issue 25)."""

    ACTIVE = "active"      # steps still to come (or waiting for one)
    FINISHED = "finished"  # had every step
    STOPPED = "stopped"    # a stop rule, a rule's ``stop``, or the sequence was removed


class ArrivalPath(StrEnum):
    """How someone reached the landing page: the article's link, or not."""

    ARTICLE = "article"
    DIRECT = "direct"


class IntakeVia(StrEnum):
    """Which front wrote a sign-up intake row: the landing page (reached from the
    article or not), the form embedded on another site, or the API."""

    ARTICLE = "article"
    DIRECT = "direct"
    EMBED = "embed"
    API = "api"


class IntakeState(StrEnum):
    """A sign-up intake row waits for the worker; one that fails the worker's
    checks is kept as refused, with its reason, and never mailed."""

    WAITING = "waiting"
    REFUSED = "refused"


class VisitPage(StrEnum):
    ARTICLE = "article"
    LANDING = "landing"


class ImportJobState(StrEnum):
    UPLOADED = "uploaded"
    PREVIEWED = "previewed"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class EndpointState(StrEnum):
    """An outbound webhook endpoint."""

    ACTIVE = "active"
    DISABLED = "disabled"


class MessageState(StrEnum):
    """One outbound webhook message."""

    PENDING = "pending"      # waiting for its (next) attempt
    SENDING = "sending"      # claimed by a worker; its lease says until when
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"        # 24 h of retries ran out
    SCRUBBED = "scrubbed"    # its subscriber was erased before it went out


class BroadcastStatus(StrEnum):
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    CANCELLED = "cancelled"


class RecipientOutcome(StrEnum):
    """What became of one person a newsletter issue was for (NULL until settled)."""

    SENT = "sent"            # handed to the send step (its delivery row says how it went)
    PAUSED = "paused"        # paused when their turn came: the pause means no email
    LEFT = "left"            # unsubscribed, bounced, complained or dropped the topic since
    CANCELLED = "cancelled"  # the broadcast was cancelled first


class ProgressPart(StrEnum):
    """What a row of ``broadcast_tally`` counts for one newsletter issue."""

    RECIPIENT = "recipient"  # its readers, by outcome (WAITING while they have none)
    DELIVERY = "delivery"    # its emails settled for good, by delivery state (SETTLED)


WAITING = "waiting"  # a reader whose outcome is still NULL, as broadcast_tally counts them



class AdminRole(StrEnum):
    """What an admin account may do (``funnel.web.roles`` maps every admin page to one)."""

    OWNER = "owner"     # everything, including accounts, export, erase, import and settings
    EDITOR = "editor"   # write, preview, test and schedule newsletters
    VIEWER = "viewer"   # the dashboard and the figures


# Higher may do what lower may: an owner passes an editor's page.
ROLE_RANK = {AdminRole.VIEWER: 0, AdminRole.EDITOR: 1, AdminRole.OWNER: 2}


class SubjectTestState(StrEnum):
    """A newsletter's subject test, when it carries ``subjects:``."""

    TESTING = "testing"   # the sample is being sent; the rest wait for the decision
    DECIDED = "decided"   # a winner was picked and the rest get it
    SKIPPED = "skipped"   # the audience was too small: everyone gets the first subject


def check_in(column: str, values: type[StrEnum]) -> str:
    """SQL for a CHECK constraint that ``column`` holds one of ``values``."""
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


class RevisionKind(StrEnum):
    """What a save in the browser's email editor did (funnel.studio)."""

    SAVED = "saved"        # the live file was replaced
    DRAFT = "draft"        # it had errors: kept beside the live file, which is unchanged
    RESTORED = "restored"  # an earlier revision was put back as the live file


class TestSendState(StrEnum):
    """A test send an admin asked for from the studio: the worker sends it."""

    __test__ = False  # a name pytest would otherwise take for a test class

    QUEUED = "queued"    # waiting for the worker (again, after a temporary failure)
    SENDING = "sending"  # the intent, committed before the provider is called
    SENT = "sent"
    FAILED = "failed"
