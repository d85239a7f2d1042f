"""The use cases: plain functions the CLI, the tracked Prefect flows, bench/ and tests call.

Nothing here imports prefect.
"""
