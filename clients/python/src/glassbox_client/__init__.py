"""glassbox-client: typed Python client for the Glassbox explanation service."""
