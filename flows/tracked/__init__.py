"""Prefect wiring for tracked runs (PREFECT_API_URL or --prefect): flows and tasks over the jobs.

The only package that imports prefect.
"""
