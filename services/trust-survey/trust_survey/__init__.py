"""Concord trust survey: Relational-health surveys answered by people of every partner."""
