"""Storage backends behind the `Store` protocol in `base`."""
