"""HTTP API of dispatch (FastAPI)."""
