"""PagerDuty's REST API: the client, the incident's record as values, the figures computed from it, the notes."""
