"""Analytics: the stage's per-day counters, counted from the events queue as things happen; dashboards and
Prometheus metrics read them."""
