"""LLM insights: providers behind one interface, our reply schema, and the resilient chain that
tries them in order (retries, backoff, circuit breaker, token budget, offline fallback)."""
