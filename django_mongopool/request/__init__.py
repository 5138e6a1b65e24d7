"""The request lifecycle: ``request.mongo_session`` and ``amongo_session()`` (``middleware``),
streamed responses (``streams``), 503 responses when MongoDB cannot serve (``unavailable``) and
the JSON-or-HTML choice (``negotiation``)."""
