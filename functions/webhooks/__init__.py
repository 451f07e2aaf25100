"""Outbound webhooks: subscriptions, the fan-out of events to them, and their signed, retried deliveries."""
