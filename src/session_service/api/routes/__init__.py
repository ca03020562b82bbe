"""Routers. They validate, call the store and shape responses; no Redis here."""
