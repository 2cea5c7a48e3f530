"""The PagerDuty → Devin postmortem bridge: orchestration and shared pieces here, one sub-package per outside system."""
