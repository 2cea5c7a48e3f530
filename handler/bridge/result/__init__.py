"""What a session gives back: the structured result's schema and its checks, and the postmortem rubric."""
