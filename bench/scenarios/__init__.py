"""Every module here registers its scenarios with `bench.registry.scenario`."""
