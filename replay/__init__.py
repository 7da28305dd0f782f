"""ZeroMQ replay pipeline (not yet implemented)."""
