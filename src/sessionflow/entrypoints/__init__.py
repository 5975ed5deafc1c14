"""sessionflow internals."""
