"""Business rules of the service_desk service: pure Python, no nameko, no SQLAlchemy."""
