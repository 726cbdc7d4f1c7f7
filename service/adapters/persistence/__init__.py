"""adapters/persistence."""
