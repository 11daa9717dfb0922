"""Business rules of the rules service, pure Python (no nameko, no SQLAlchemy)."""
