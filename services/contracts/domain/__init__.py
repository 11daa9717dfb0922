"""Business rules of the contracts service: pure Python, no nameko, no SQLAlchemy."""
