"""Runbook tests: `qlrf-run test` and `qlrf-run simulate`.

A case runs the real interpreter workflow on Temporal's time-skipping test server,
with every activity step answered by the case's mocks (registered under the very
activity names the worker uses), and its gates and controls delivered at simulated
times through the same operations the CLI uses (runner/app).
"""
