"""pytest fixtures for cnm labs (filled in below)."""
