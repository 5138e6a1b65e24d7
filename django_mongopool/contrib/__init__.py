"""Integrations with task frameworks, installed by ``AppConfig.ready()`` when they are present."""
