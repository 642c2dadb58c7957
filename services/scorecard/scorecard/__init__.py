"""Scorecard: the balanced alliance scorecard. Today it knows the alliances (a projection of
governance's charter events); the scorecard itself comes next."""
