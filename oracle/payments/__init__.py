"""Payment providers: one adapter per provider (oracle.payments.provider), signed webhooks in, orders out."""
