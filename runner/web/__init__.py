"""`qlrf-run serve`: the approvals service, web pages and the JSON API (docs/web.md).

It keeps no state of its own: Temporal and the run store are the truth, every
operation is runner/app's, and a session lives in its signed cookie, so any number
of replicas serve the same people behind one URL.
"""
