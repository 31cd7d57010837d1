"""Shared plumbing for the meeting-room services.

A service holds only its domain; everything here is the same for all three:
configuration from the environment, RFC 9457 errors, request ids and JSON logs,
metrics, health, JWT verification, pagination, the transactional outbox and the
Kafka consumer runner.
"""
