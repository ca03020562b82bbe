"""Clients of other FaultMaven services."""
