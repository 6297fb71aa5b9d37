"""qlrf-run: infrastructure runbooks as YAML, run durably on Temporal."""

__version__ = "0.1.0"
