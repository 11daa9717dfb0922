"""Identity's HTTP routes, one module per area, all on the one `identity` blueprint (its tag
and endpoint names, `identity.<view>`, are what the OpenAPI document and the public endpoints
name). The registry lists this package among the gateway's resources."""

# The areas in the order of the OpenAPI document (the order their routes are made).
# isort: off
from services.gateway.identity.resources import auth  # noqa: F401
from services.gateway.identity.resources import users  # noqa: F401
from services.gateway.identity.resources import lockouts  # noqa: F401
from services.gateway.identity.resources import teams  # noqa: F401
from services.gateway.identity.resources import keys  # noqa: F401
# isort: on
from services.gateway.identity.resources.blueprint import blp

__all__ = ["blp"]
