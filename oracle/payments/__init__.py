"""Payment rails: signed webhooks in, normalised confirmations out (and a rail stand-in for development)."""
