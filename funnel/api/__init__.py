"""The JSON API under /api/v1: keys (``keys``), its OpenAPI document (``spec``),
RFC 9457 problem details (``problems``) and the routes (``routes``)."""
