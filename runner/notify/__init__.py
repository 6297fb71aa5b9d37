"""Notifications people act on: the worker's channels and routes (QLRF_NOTIFY_CONFIG),
the messages each channel gets, and the activity that delivers one, once."""
