"""The request's guarantees outside requests: a task's scope and session (``scope``), workers
and commands in the fleet (``fleet``), and the Celery and Django tasks integrations that
``AppConfig.ready()`` installs when those frameworks are present."""
