"""Health: liveness, readiness and dependency checks for the stage."""
