"""The web side beyond Dash: the HTTP API, frame rendering and caching, protections, serving."""
