"""The PagerDuty → Devin postmortem bridge: one small module per concern, wired together by app.py."""
