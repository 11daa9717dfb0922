"""What the intake and every run read at every event, cached per process for `PATTERN_TTL`
seconds: the enabled rules, the active webhook subscriptions and the directory of users and
teams (a change made through this process applies at once: `forget_cached_rules`)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.rules.domain.authority import Authority
from services.rules.models import DirectoryTeam, DirectoryUser, Rule, WebhookSubscription

PATTERN_TTL = 2.0
_RULES_CACHE: dict[str, Any] = {}
_SUBSCRIPTIONS_CACHE: dict[str, Any] = {}
_DIRECTORY_CACHE: dict[str, Any] = {}


@dataclass(frozen=True)
class RuleView:
    """A rule as the intake needs it (cached between events, detached from any session)."""

    id: str
    name: str
    version: int
    enabled: bool
    definition: dict[str, Any]
    authority: dict[str, Any] | None = None


@dataclass(frozen=True)
class SubscriptionView:
    id: str
    event_types: list[str]
    authority: dict[str, Any] | None = None


@dataclass(frozen=True)
class UserView:
    id: str
    username: str
    display_name: str | None
    email: str | None
    role: str
    team_id: str | None
    active: bool


@dataclass(frozen=True)
class TeamView:
    id: str
    name: str
    manager_id: str | None


@dataclass(frozen=True)
class Directory:
    """The users and teams projection, read once per `PATTERN_TTL` seconds per process: every
    run asks it who owns, manages and belongs to what."""

    users: dict[str, UserView]
    teams: dict[str, TeamView]

    def team(self, name_or_id: str) -> TeamView | None:
        return self.teams.get(name_or_id) or next(
            (t for t in self.teams.values() if t.name == name_or_id), None)


def forget_cached_rules() -> None:
    """After a rule, a subscription or the directory changed in this process."""
    _RULES_CACHE.clear()
    _SUBSCRIPTIONS_CACHE.clear()
    _DIRECTORY_CACHE.clear()


def forget_directory() -> None:
    """After a directory event: the next read sees it."""
    _DIRECTORY_CACHE.clear()


def directory(session: Session) -> Directory:
    cached = _DIRECTORY_CACHE.get("directory")
    if cached is None or _DIRECTORY_CACHE["at"] + PATTERN_TTL < time.monotonic():
        cached = Directory(
            users={u.id: UserView(u.id, u.username, u.display_name, u.email, u.role,
                                  u.team_id, u.active)
                   for u in session.scalars(select(DirectoryUser)).all()},
            teams={t.id: TeamView(t.id, t.name, t.manager_id)
                   for t in session.scalars(select(DirectoryTeam)).all()},
        )
        _DIRECTORY_CACHE.update(at=time.monotonic(), directory=cached)
    return cached


def effective_authority(session: Session, stored: dict[str, Any] | None) -> Authority:
    """A rule's or a run's authority as the directory stands now."""
    people = directory(session)
    return Authority.of(stored).effective(people.users, people.teams)


def enabled_rules(session: Session) -> list[RuleView]:
    """The enabled rules. No rules at all is not cached: the shipped rules are seeded by
    another process after the service starts, and an empty list cached by an event just
    before (a user projected from the gateway's seed) would let the first leads match nothing
    for PATTERN_TTL."""
    cached = _RULES_CACHE.get("rules")
    if not cached or _RULES_CACHE["at"] + PATTERN_TTL < time.monotonic():
        cached = [
            RuleView(r.id, r.name, r.version, r.enabled, r.definition, r.authority)
            for r in session.scalars(select(Rule).where(Rule.enabled.is_(True))).all()
        ]
        _RULES_CACHE.update(at=time.monotonic(), rules=cached)
    return cached


def subscriptions(session: Session) -> list[SubscriptionView]:
    """The active webhook subscriptions."""
    cached = _SUBSCRIPTIONS_CACHE.get("subs")
    if cached is None or _SUBSCRIPTIONS_CACHE["at"] + PATTERN_TTL < time.monotonic():
        cached = [
            SubscriptionView(sub.id, list(sub.event_types), sub.authority)
            for sub in session.scalars(
                select(WebhookSubscription).where(WebhookSubscription.active.is_(True)))
        ]
        _SUBSCRIPTIONS_CACHE.update(at=time.monotonic(), subs=cached)
    return cached
