"""Lightning OS event processor."""
