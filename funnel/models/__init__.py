"""The database schema as SQLAlchemy 2.0 typed models, one module per area:
people (subscribers and what they did), mail (what is sent and what happened to it),
tallies (the kept figures), admin (accounts, imports, the API and webhooks) and
automation (tags, sequences, rule firings); base holds what every table shares.

Models hold data only; what happens to a subscriber lives in ``core.lifecycle`` and
the use-case packages. Importing this package registers every table on
``Base.metadata`` (Alembic and the drift test read it).
"""

from __future__ import annotations

from funnel.models.admin import (  # noqa: F401
    API_SCOPES,
    ARRIVAL_PATHS,
    ENDPOINT_ACTIVE,
    ENDPOINT_DISABLED,
    MESSAGE_DELIVERED,
    MESSAGE_FAILED,
    MESSAGE_PENDING,
    MESSAGE_SCRUBBED,
    MESSAGE_SENDING,
    AdminSession,
    AdminTestSend,
    AdminUser,
    ApiKey,
    ImportJob,
    WebhookEndpoint,
    WebhookMessage,
)
from funnel.models.automation import (  # noqa: F401
    TAG_REASON_MAX,
    RuleFiring,
    SequenceEnrollment,
    SubscriberTag,
)
from funnel.models.base import (  # noqa: F401
    NAMING_CONVENTION,
    Base,
    UTCDateTime,
    new_public_id,
)
from funnel.models.mail import (  # noqa: F401
    BROADCAST_CANCELLED,
    BROADCAST_SCHEDULED,
    BROADCAST_SENDING,
    BROADCAST_SENT,
    OUTCOME_CANCELLED,
    OUTCOME_LEFT,
    OUTCOME_PAUSED,
    OUTCOME_SENT,
    Broadcast,
    BroadcastRecipient,
    Delivery,
    DeliveryEvent,
    EmailRevision,
    MachineEvent,
)
from funnel.models.people import (  # noqa: F401
    AppState,
    ConsentRecord,
    SignupIntake,
    Subscriber,
    Suppression,
    Visit,
)
from funnel.models.tallies import (  # noqa: F401
    BroadcastTally,
    ConsentTally,
    EventTally,
    LinkTally,
    LinkUnsubscribeTally,
    ProblemTally,
    StatusTally,
    StepTally,
    VisitTally,
)
