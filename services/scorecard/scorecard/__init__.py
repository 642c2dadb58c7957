"""Scorecard: the balanced alliance scorecard both partners review every month."""
