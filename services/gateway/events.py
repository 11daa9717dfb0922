"""The events the gateway publishes: changes to the directory of users and teams.

Services that need people (the rules service assigns, escalates to managers and e-mails) keep
a projection fed by these; the gateway stays the only writer of users and teams.
"""

from __future__ import annotations

from marshmallow import Schema, fields


class DirectoryUser(Schema):
    id = fields.String(required=True)
    username = fields.String(required=True)
    display_name = fields.String(required=True)
    email = fields.String(allow_none=True, required=True)
    role = fields.String(required=True)
    team_id = fields.String(allow_none=True, required=True)
    active = fields.Boolean(required=True)


class DirectoryTeam(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    manager_id = fields.String(allow_none=True, required=True)


class UserChanged(Schema):
    """A user was created or changed (role, team, active flag, name or e-mail); the whole
    user is sent, so a consumer keeps the newest state. Also sent for every user each time the
    demo organisation is seeded."""

    user = fields.Nested(DirectoryUser, required=True)


class TeamChanged(Schema):
    """A team was created or changed (name or manager)."""

    team = fields.Nested(DirectoryTeam, required=True)


EVENT_SCHEMAS: dict[str, type[Schema]] = {
    "user_changed": UserChanged,
    "team_changed": TeamChanged,
}
