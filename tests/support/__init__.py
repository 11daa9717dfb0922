"""Real servers for tests (SMTP, webhook endpoint): no mocks."""
