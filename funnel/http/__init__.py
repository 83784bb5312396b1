"""What every HTTP front (the web pages and the JSON API) shares: the Flask
extensions (CSRF protection, rate limits) and how a client is counted."""
