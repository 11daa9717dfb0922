"""flask-smorest blueprints, one module per area."""
