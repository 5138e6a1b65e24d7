"""What the pool page, ``manage.py mongo_connections``, the readiness probe and ``/metrics``
report: one report builder (``report``), the members' own counts (``members``), the Prometheus
exposition (``prometheus``), the probe (``readiness``), the views and who may see them
(``views``, ``permissions``). Nothing else in the package imports from here but the top-level
Django modules (``admin``, ``urls``, ``checks``, the command)."""
