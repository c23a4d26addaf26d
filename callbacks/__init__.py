"""Dash callbacks, one module per panel (named like its layout in components/); each exposes
`register(app, registry)`."""
