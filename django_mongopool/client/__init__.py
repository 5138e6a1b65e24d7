"""The process's MongoDB clients and what pymongo does for them.

``process`` holds the sync client (build, get, retire, close), ``event_loops`` one
``AsyncMongoClient`` per event loop; ``options`` parses the settings into their
configuration, ``sessions`` and ``scope`` are the sessions they hand out and the running
request's or task's pinned clients, ``figures`` and ``pools`` count their pools.
``pymongo_internals`` is the one module that touches pymongo's non-public names (checked at
``ready()``). Nothing here imports from ``request``, ``tasks``, ``fleet`` or ``audit``.
"""
