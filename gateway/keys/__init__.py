"""Members' gateway keys: authentication, their lifecycle (admin API and CLI), their limits."""
