"""``python -m django_mongopool.ops``: print the paths of the operations kit's files."""

from __future__ import annotations

from django_mongopool.ops import FILES

for path in FILES:
    print(path)
