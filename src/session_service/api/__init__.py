"""The HTTP layer: middleware, dependencies, exception handlers and thin routers."""
