"""Email: composing, rendering, link building, batching for providers and the lint."""
