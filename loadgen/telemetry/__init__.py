"""Telemetry for dashboards and traces: what a run exports while it goes."""
