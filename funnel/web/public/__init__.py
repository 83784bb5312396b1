"""What visitors meet: the article and landing page, the embedded form, the archive."""
