"""Lightning OS web UI."""
