"""The application layer: the manager, the sweeper and the ports. No infrastructure imports."""
