"""Signed webhooks (Standard Webhooks): events for finished tasks, a durable outbox, delivery."""
