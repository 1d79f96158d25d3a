"""The tested logic behind tasks.py and noxfile.py (they stay thin and call into here)."""
