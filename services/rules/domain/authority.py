"""Who a rule or a webhook subscription acts for, and what that lets it touch.

Pure Python: the rules service stores an `Authority` with every rule and subscription when it
is saved (from what the gateway says about the author) and asks it, at run and delivery time,
which records, people and events are within reach.

- **Organisation** authority (admins, shipped rules, rules saved before authorities existed):
  every record, everyone; the owners' RPCs get the scope `{"all": true}`.
- **Team** authority (a manager): the records owned by the manager or by an active member of a
  team the manager manages, and unowned leads (the public pool, which managers see); the owners'
  RPCs get the manager's own scope `{"owner_ids": [...], "include_pool": true}`, so the owning
  service refuses what the manager could not do by hand. People within reach: those members,
  and admins (who may see everything anyway).

The members are worked out again from the directory projection at every run and delivery, so a
member who leaves the team leaves the rule's reach; an author who is deactivated or is no longer
a manager leaves their rules and subscriptions with no reach at all (they stop acting, and say
why). The scope stored at authoring time is used while the directory does not know the author.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from services.rules.domain import records

ORGANISATION = "organisation"
TEAM = "team"
AUTHOR_ROLES = ("admin", "manager")


class Person(Protocol):
    id: str
    role: str
    team_id: str | None
    active: bool


class Team(Protocol):
    id: str
    manager_id: str | None


class NotAllowed(ValueError):
    """The principal may not author (or change) this; the message says why."""


@dataclass(frozen=True)
class Authority:
    kind: str = ORGANISATION
    user_id: str | None = None
    owner_ids: frozenset[str] = field(default_factory=frozenset)
    # Why a team authority reaches nothing any more (its author was deactivated, ...).
    revoked: str | None = None

    # ---- building and storing

    @classmethod
    def organisation(cls, user_id: str | None = None) -> Authority:
        return cls(ORGANISATION, user_id)

    @classmethod
    def of(cls, stored: Mapping[str, Any] | None) -> Authority:
        """The stored form back; nothing stored is an organisation rule (shipped rules and
        rules saved before authorities existed)."""
        if not stored or stored.get("kind") != TEAM:
            return cls.organisation((stored or {}).get("user_id"))
        return cls(TEAM, stored.get("user_id"), frozenset(stored.get("owner_ids") or ()))

    @classmethod
    def for_author(cls, principal: Mapping[str, Any] | None) -> Authority:
        """The authority a principal gives what they save: `{"user_id", "role",
        "owner_ids"}` from the gateway (its row-level scope). No principal is the system
        itself (the seed, an operator's script): the organisation."""
        if principal is None:
            return cls.organisation()
        role, user_id = principal.get("role"), principal.get("user_id")
        if role == "admin":
            return cls.organisation(user_id)
        if role == "manager" and isinstance(user_id, str) and user_id:
            return cls(TEAM, user_id, frozenset({user_id, *(principal.get("owner_ids") or ())}))
        raise NotAllowed("rules and webhooks are authored by admins and managers only")

    def to_dict(self) -> dict[str, Any]:
        if self.kind == ORGANISATION:
            return {"kind": ORGANISATION, "user_id": self.user_id}
        return {"kind": TEAM, "user_id": self.user_id, "owner_ids": sorted(self.owner_ids)}

    @property
    def is_organisation(self) -> bool:
        return self.kind == ORGANISATION

    # ---- now

    def effective(self, users: Mapping[str, Person], teams: Mapping[str, Team]) -> Authority:
        """This authority as the directory stands now: the members of the teams the author
        manages today; nothing if the author left or is no longer a manager."""
        if self.is_organisation:
            return self
        author = users.get(self.user_id or "")
        if author is None:  # the directory has not heard of them (yet): what was stored
            return self
        if not author.active:
            return Authority(TEAM, self.user_id, frozenset(),
                             "the author of this rule or subscription is deactivated")
        if author.role not in AUTHOR_ROLES:
            return Authority(TEAM, self.user_id, frozenset(),
                             f"the author is no longer a manager (now {author.role})")
        managed = {team.id for team in teams.values() if team.manager_id == self.user_id}
        members = {u.id for u in users.values() if u.active and u.team_id in managed}
        return Authority(TEAM, self.user_id, frozenset({self.user_id, *members}))

    def scope(self) -> dict[str, Any]:
        """The row-level scope the owners' RPCs (leads.assign_lead, ...) get for an action."""
        if self.is_organisation:
            return {"all": True}
        return {"owner_ids": sorted(self.owner_ids), "include_pool": True}

    def covers(self, record_type: str | None, record: Mapping[str, Any] | None) -> bool:
        """Whether a rule of this authority may act on (and read) the record. A run without a
        record (a schedule) is covered; a record whose owner is unknown is not."""
        if self.is_organisation:
            return True
        if self.revoked:
            return False
        if record is None:
            return True
        if "owner_id" not in record:  # only an id, never seen in full: cannot tell
            return False
        owner_id = record.get("owner_id")
        if owner_id is None:
            return record_type == "lead"  # the public pool, which managers see
        return owner_id in self.owner_ids

    def reaches(self, user_id: str | None, users: Mapping[str, Person]) -> bool:
        """Whether a person may be given a task or a notification by this authority."""
        if self.is_organisation:
            return True
        if not user_id or self.revoked:
            return False
        if user_id in self.owner_ids:
            return True
        person = users.get(user_id)
        return person is not None and person.role == "admin" and person.active

    def within(self, user_ids: Iterable[str], users: Mapping[str, Person]
               ) -> tuple[list[str], list[str]]:
        """(reachable, left out) of `user_ids`, in their order."""
        kept: list[str] = []
        dropped: list[str] = []
        for user_id in user_ids:
            (kept if self.reaches(user_id, users) else dropped).append(user_id)
        return kept, dropped

    def sees_event(self, name: str, data: Mapping[str, Any]) -> bool:
        """Whether a subscription of this authority gets an event: one about a record it
        covers; of the rules service's own events, the tasks and notifications of its people.
        The directory's events (people's addresses) and events about no record are for the
        organisation only."""
        if self.is_organisation:
            return True
        if self.revoked:
            return False
        producer = name.split(".", 1)[0]
        if producer == "rules":
            task = data.get("task")
            if isinstance(task, Mapping):
                return task.get("assignee_id") in self.owner_ids
            notification = data.get("notification")
            if isinstance(notification, Mapping):
                return notification.get("user_id") in self.owner_ids
            return False
        if producer == "gateway":
            return False
        record_type, record = records.primary_record(dict(data))
        if record is None:
            return False
        return self.covers(record_type, record)

    # ---- management

    def managed_by(self, principal: Authority) -> bool:
        """Whether `principal` (the authority a caller would give) may change or delete what
        has this authority: admins everything; a manager what they authored."""
        if principal.is_organisation:
            return True
        return not self.is_organisation and self.user_id == principal.user_id

    def visible_to(self, principal: Authority) -> bool:
        """Whether `principal` may read it: what they may change, and organisation rules
        (managers should know what the organisation's rules do)."""
        return self.managed_by(principal) or self.is_organisation


def assignable(actor: Mapping[str, Any], scope_owner_ids: Iterable[str],
               users: Mapping[str, Person]) -> set[str] | None:
    """Who `actor` (`{"user_id", "role", "team_id"}`) may give a task to; None = anyone.
    Admins anyone; a manager the members of the teams they manage (their scope) and of their
    own team; a rep themselves and the active members of their own team."""
    if actor.get("role") == "admin":
        return None
    allowed = {actor.get("user_id"), *scope_owner_ids} - {None}
    team_id = actor.get("team_id")
    if team_id:
        allowed |= {u.id for u in users.values() if u.active and u.team_id == team_id}
    return allowed


def _team_named(teams: Mapping[str, Any], name_or_id: str) -> Any:
    return teams.get(name_or_id) or next(
        (t for t in teams.values() if getattr(t, "name", None) == name_or_id), None)


def definition_problems(definition: Mapping[str, Any], authority: Authority,
                        users: Mapping[str, Person], teams: Mapping[str, Any]
                        ) -> dict[str, list[str]]:
    """What a team rule names outside its author's reach, by path (`actions.0.team`), so that
    the author hears it when saving; the run-time checks hold either way (a template can name
    anyone)."""
    if authority.is_organisation:
        return {}
    problems: dict[str, list[str]] = {}

    def team_problem(path: str, name: Any) -> None:
        team = _team_named(teams, name) if isinstance(name, str) else None
        if team is None or team.manager_id != authority.user_id:
            problems.setdefault(path, []).append(
                f"{name!r} is not a team you manage: a manager's rules act within their teams")

    def person_problem(path: str, user_id: str) -> None:
        if not authority.reaches(user_id, users):
            problems.setdefault(path, []).append(
                f"user {user_id} is not in a team you manage")

    def spec_problem(path: str, spec: Any) -> None:
        if not isinstance(spec, str):
            return
        if spec.startswith("user:"):
            person_problem(path, spec[5:])
        elif spec.startswith(("team:", "team_manager:")):
            team_problem(path, spec.split(":", 1)[1])

    for index, action in enumerate(definition.get("actions") or []):
        if not isinstance(action, Mapping):
            continue
        path = f"actions.{index}"
        kind = action.get("type")
        if kind == "assign":
            if action.get("team"):
                team_problem(f"{path}.team", action["team"])
            for key in ("territories", "product_lines"):
                for value, team in (action.get(key) or {}).items():
                    team_problem(f"{path}.{key}.{value}", team)
        elif kind == "create_task":
            spec_problem(f"{path}.assignee", action.get("assignee", "owner"))
        elif kind == "notify":
            for number, spec in enumerate(action.get("to") or []):
                spec_problem(f"{path}.to.{number}", spec)
        elif kind == "call":
            owner_id = (action.get("args") or {}).get("owner_id")
            if isinstance(owner_id, str) and "{" not in owner_id:
                person_problem(f"{path}.args.owner_id", owner_id)
    return problems
