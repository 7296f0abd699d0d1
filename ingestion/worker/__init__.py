"""The worker side: claim a job, extract outside any transaction, record the outcome; the
circuit breaker, the spend caps and the heartbeat."""
