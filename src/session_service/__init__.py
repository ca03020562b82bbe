"""fm-session-service: FaultMaven's troubleshooting sessions, stored in Redis."""

__version__ = "1.0.0"
