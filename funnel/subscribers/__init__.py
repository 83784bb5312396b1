"""The subscriber's use cases: sign-up and its intake, confirm, unsubscribe, pause and
resume (actions), data export and erasure (privacy), purging unconfirmed sign-ups
(retention), the confirmation emails (system_mail), the provider's events
(provider_events) and the statements several of them share (queries)."""
