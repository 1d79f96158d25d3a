"""Lightning OS core: settings, the event envelope, storage and bus contracts, the runtime."""
