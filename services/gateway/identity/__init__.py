"""Identity: who may call the gateway and whom they see. Users, teams and their managers,
API keys, signed tokens, passwords, the throttling of failed authentications, the principal
of a request (role and row-level scope) and the directory events other services learn people
from. Its tables are in the gateway's database; its HTTP routes are `resources/`."""
