"""adapters/alerts."""
