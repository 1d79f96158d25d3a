"""Lightning OS API service."""
