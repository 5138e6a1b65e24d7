"""``ENGINE: "django_mongopool.backends.mongodb"``: django-mongodb-backend on the app's client."""
