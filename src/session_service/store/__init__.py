"""Storage: keys, Lua scripts, connections and the SessionStore."""
