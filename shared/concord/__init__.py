"""Concord's kernel: what every service shares (events, store, outbox, bus, projections, HTTP)."""
