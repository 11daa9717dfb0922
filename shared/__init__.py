"""The common platform of the CRM services: configuration, the event envelope, the
transactional outbox and idempotent inbox, the database dependency, metrics, logging and
the typed errors that cross RPC. No business logic lives here."""
