"""Tests against a real Airflow deployment: its own api-server, scheduler, dag-processor and triggerer."""
