"""``MIDDLEWARE = ["django_mongopool.middleware.MongoSessionMiddleware", ...]``: the public path of
the middleware (its implementation is :mod:`django_mongopool.request.middleware`)."""

from django_mongopool.request.middleware import MongoSessionMiddleware

__all__ = ["MongoSessionMiddleware"]
