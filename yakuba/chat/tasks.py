"""Chat's background jobs (owned by helpers)."""
