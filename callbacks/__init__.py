"""Dash callbacks, one module per panel; each exposes `register(app, source, ...)`."""
