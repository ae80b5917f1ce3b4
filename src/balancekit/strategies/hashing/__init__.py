"""Consistent-hashing strategies: the key picks the endpoint, the same key the same endpoint."""
