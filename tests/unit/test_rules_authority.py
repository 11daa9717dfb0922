"""Who a rule or a webhook subscription acts for: an organisation rule reaches everything, a
manager's rule only the records and people of the teams the manager manages, as the directory
stands at run time; what a team rule names outside its teams is refused at save time."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from services.rules.domain.authority import (
    Authority,
    NotAllowed,
    assignable,
    definition_problems,
)


def person(uid: str, role: str, team_id: str | None, active: bool = True) -> SimpleNamespace:
    return SimpleNamespace(id=uid, role=role, team_id=team_id, active=active)


USERS = {u.id: u for u in (
    person("admin", "admin", None), person("east-mgr", "manager", "east"),
    person("zw", "sales_rep", "east"), person("ln", "sales_rep", "east"),
    person("cj", "sales_rep", "south"), person("old", "sales_rep", "east", active=False),
)}
TEAMS = {"east": SimpleNamespace(id="east", name="华东销售部", manager_id="east-mgr"),
         "south": SimpleNamespace(id="south", name="华南销售部", manager_id=None)}
MANAGER = {"user_id": "east-mgr", "role": "manager", "team_id": "east",
           "owner_ids": ["east-mgr", "zw", "ln"]}


def team_authority() -> Authority:
    return Authority.for_author(MANAGER).effective(USERS, TEAMS)


def test_admins_and_the_system_author_for_the_organisation_reps_not_at_all() -> None:
    assert Authority.for_author(None).is_organisation
    assert Authority.for_author({"user_id": "admin", "role": "admin"}).is_organisation
    assert Authority.of(None).scope() == {"all": True}  # shipped and older rules
    with pytest.raises(NotAllowed):
        Authority.for_author({"user_id": "zw", "role": "sales_rep", "owner_ids": ["zw"]})


def test_a_managers_authority_covers_their_teams_records_and_the_pool() -> None:
    authority = team_authority()
    assert authority.owner_ids == {"east-mgr", "zw", "ln"}  # not the inactive member
    assert authority.scope() == {"owner_ids": ["east-mgr", "ln", "zw"], "include_pool": True}
    assert authority.covers("lead", {"id": "1", "owner_id": "zw"})
    assert authority.covers("lead", {"id": "1", "owner_id": None})  # the public pool
    assert not authority.covers("lead", {"id": "1", "owner_id": "cj"})
    assert not authority.covers("lead", {"id": "1"})  # the owner is not known: not covered
    assert not authority.covers("customer", {"id": "1", "owner_id": None})
    assert authority.covers(None, None)  # a schedule, about no record


def test_people_within_reach_are_the_members_and_admins() -> None:
    kept, dropped = team_authority().within(["zw", "cj", "admin", "ghost"], USERS)
    assert kept == ["zw", "admin"] and dropped == ["cj", "ghost"]


def test_the_directory_of_now_decides_and_a_deactivated_author_reaches_nothing() -> None:
    stored = Authority.of(Authority.for_author(MANAGER).to_dict())
    moved = {**USERS, "ln": person("ln", "sales_rep", "south")}
    assert stored.effective(moved, TEAMS).owner_ids == {"east-mgr", "zw"}
    gone = {**USERS, "east-mgr": person("east-mgr", "manager", "east", active=False)}
    revoked = stored.effective(gone, TEAMS)
    assert revoked.revoked and not revoked.covers("lead", {"id": "1", "owner_id": "zw"})
    demoted = {**USERS, "east-mgr": person("east-mgr", "sales_rep", "east")}
    assert "no longer a manager" in stored.effective(demoted, TEAMS).revoked
    # a directory that has not heard of the author yet: what was stored
    assert stored.effective({}, {}).owner_ids == {"east-mgr", "zw", "ln"}


def test_a_team_subscription_sees_events_about_its_records_and_its_peoples_tasks() -> None:
    authority = team_authority()
    assert authority.sees_event("leads.lead_assigned", {"lead": {"id": "1", "owner_id": "zw"}})
    assert not authority.sees_event("leads.lead_assigned",
                                    {"lead": {"id": "1", "owner_id": "cj"}})
    assert not authority.sees_event("gateway.user_changed", {"user": {"id": "cj"}})
    assert authority.sees_event("rules.task_created", {"task": {"assignee_id": "ln"}})
    assert not authority.sees_event("rules.task_created", {"task": {"assignee_id": "cj"}})
    assert not authority.sees_event("rules.rule_run_completed", {"run": {}})
    assert not authority.sees_event("sales.pipeline_changed", {"pipeline": "x"})
    assert Authority.organisation().sees_event("gateway.user_changed", {})


def test_who_manages_and_reads_what() -> None:
    mine, org = Authority.for_author(MANAGER), Authority.organisation()
    other = Authority.for_author({"user_id": "south-mgr", "role": "manager", "owner_ids": []})
    assert mine.managed_by(mine) and mine.managed_by(org)
    assert not org.managed_by(mine) and org.visible_to(mine)  # read-only for managers
    assert not other.visible_to(mine)


def test_a_team_rule_naming_other_teams_or_people_is_refused_by_path() -> None:
    definition = {"actions": [
        {"type": "assign", "territories": {"华东": "华东销售部", "华南": "华南销售部"}},
        {"type": "create_task", "title": "t", "assignee": "user:cj"},
        {"type": "notify", "to": ["owner", "team_manager:华南销售部", "user:zw"], "title": "t"},
        {"type": "call", "service": "leads", "method": "assign_lead",
         "args": {"owner_id": "cj"}},
    ]}
    problems = definition_problems(definition, team_authority(), USERS, TEAMS)
    assert set(problems) == {"actions.0.territories.华南", "actions.1.assignee",
                             "actions.2.to.1", "actions.3.args.owner_id"}
    assert definition_problems(definition, Authority.organisation(), USERS, TEAMS) == {}


def test_reps_assign_tasks_within_their_team_managers_within_theirs_admins_anyone() -> None:
    assert assignable({"user_id": "zw", "role": "sales_rep", "team_id": "east"}, ["zw"],
                      USERS) == {"zw", "ln", "east-mgr"}
    assert assignable({"user_id": "cj", "role": "sales_rep", "team_id": "south"}, ["cj"],
                      USERS) == {"cj"}
    assert assignable({"user_id": "admin", "role": "admin"}, [], USERS) is None
    assert "cj" not in assignable({"user_id": "east-mgr", "role": "manager",
                                   "team_id": "east"}, MANAGER["owner_ids"], USERS)
