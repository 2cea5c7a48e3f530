"""What PagerDuty's webhook delivers: its signature, the event as PagerDuty sends it, and the selection policy."""
