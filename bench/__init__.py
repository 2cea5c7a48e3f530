"""The benchmark of issue 5: what each PagerDuty webhook costs. Run it with `scripts/bench` (see bench.run)."""
