"""Use cases. Every business rule lives here or in the domain, never in a store or a route."""
