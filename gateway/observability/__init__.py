"""What operators see: JSON logs with secrets redacted, request ids, Prometheus metrics."""
