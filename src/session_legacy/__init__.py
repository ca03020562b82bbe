"""The one-time import from the original fm-session-service (`fm-session-service import-legacy`).

It lives outside the request-serving package: a serving process never imports it.

- `records`: reading one record of the original, without guessing (no I/O);
- `writer`: writing it through the store's scripts (`lua/`, `codecs`), staged then committed;
- `run`: the command's loop over the original's Redis, and its summary.
"""

#: Where the original service kept its sessions (the command's default `--db`).
DEFAULT_DB = 1
