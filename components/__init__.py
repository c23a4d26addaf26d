"""Layout (one module per panel) and the pure builders that turn snapshots into figures and text."""
