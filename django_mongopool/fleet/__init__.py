"""The fleet: each process's heartbeat (``heartbeat``), reading the fleet's heartbeats
defensively (``reading``), the connection budget and each process's share of it (``budget``,
``shares``), the pools' recent history (``history``) and the processes' roles (``roles``)."""
