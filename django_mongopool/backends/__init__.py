"""Django database backends that use the app's process client."""
