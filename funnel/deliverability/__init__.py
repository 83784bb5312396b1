"""Mail that arrives: the DNS check-up (docs/deliverability.md)."""
