"""What keeps mistakes and secrets from escaping: sessions left open (``leaks``), clients built
outside the app (``stray``), credentials in messages and error reports (``redact``,
``error_reports``), outside text on a terminal (``terminal``), untrusted numbers and documents
(``untrusted``) and a parent's state in a forked child (``forks``).

Every other part of the package may use these; they import none of it but the settings and the exceptions.
"""
