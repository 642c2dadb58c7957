"""Governance: the alliance charter, and later its governance rhythm (meetings, decisions,
action items)."""
