"""Adapters: implementations of the ports (stores, waker, sinks, metrics)."""
