"""The one Redis client (and its pool) of a process, for every mode.

- `client`: `build_client` turns the settings into a standalone, Sentinel or
  Cluster client, and `describe` names it without credentials;
- `pool`: the pool that queues a request for a free connection, first come first
  served, instead of failing it under contention;
- `sentinel`: master discovery that keeps the sentinel list stable, over TLS when
  the URL asks for it;
- `cluster`: a Cluster client whose failures are `RedisError`s, and that runs a
  script only on its key's current owner;
- `wait`: a script and the WAIT that follows it, on one connection.

Nothing is re-exported here: callers import from the module that owns the name.
"""
