"""A real PostgreSQL server for the tests, started by the suite itself (see server.py)."""
