"""Concord notifications: subscriptions to domain events, delivered as signed webhooks,
Slack and Teams messages."""
