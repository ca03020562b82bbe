"""Domain rules: what a session is and how it may change. No I/O here."""
