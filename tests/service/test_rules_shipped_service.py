"""Shipped rules on an installed system (SQLite and PostgreSQL): the next seed upgrades a
shipped rule nobody changed since it was installed (a new version, its runs kept); one an
admin changed is left as it is and its new shipped definition offered to admins on
`get_rule` until an admin adopts it (`adopt_shipped_rule`: admins only, 412 with nothing to
adopt); a rule an older seed installed (nothing recorded) counts as unchanged while it is
still its first version."""

from __future__ import annotations

import copy
from datetime import UTC, datetime

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from services.rules import clock as clock_module
from services.rules import seed
from services.rules.contract import EVENT_SCHEMAS
from services.rules.models import Rule, RuleRun, RuleVersion, ShippedRule, outbox
from services.rules.service import RulesService
from services.rules.usecases.cached import forget_cached_rules
from shared.context import Context
from shared.db import get_engine
from shared.errors import Forbidden, NotFound, PreconditionFailed
from tests.service.workers import migrated_database, service_worker

ADMIN = {"user_id": "admin-1", "role": "admin", "team_id": None, "owner_ids": []}
MANAGER = {"user_id": "mgr-1", "role": "manager", "team_id": "team-1", "owner_ids": ["rep-1"]}

V1 = {
    "key": "ticket-sla-breached",
    "name": "工单 SLA 超时",
    "description": "A breached SLA: the assignee is notified.",
    "trigger": {"type": "event", "event": "service_desk.ticket_sla_breached"},
    "conditions": "",
    "actions": [{"type": "notify", "to": ["owner"], "channels": ["in_app"],
                 "title": "SLA 超时：{{ record.id }}"}],
}
V2 = copy.deepcopy(V1)
V2["actions"][0]["to"] = ["owner", "field:group_manager_id"]
OTHER = {**copy.deepcopy(V1), "key": "other-shipped", "name": "another shipped rule"}


@pytest.fixture(params=["sqlite", "postgresql"])
def rules_url(request, tmp_path, monkeypatch):
    monkeypatch.setattr(clock_module, "CLOCK", clock_module.Clock())
    forget_cached_rules()
    yield migrated_database(request, tmp_path, "rules")
    forget_cached_rules()


def rules(url: str, actor: str | None = "admin-1"):
    return service_worker(RulesService, get_engine(url), outbox, EVENT_SCHEMAS,
                          Context(correlation_id="corr-shipped", actor=actor))


def stored(url: str, key: str = "ticket-sla-breached") -> tuple[Rule, ShippedRule, list[int]]:
    with Session(get_engine(url)) as session:
        rule = session.scalar(select(Rule).where(Rule.key == key))
        versions = session.scalars(select(RuleVersion.version).where(
            RuleVersion.rule_id == rule.id).order_by(RuleVersion.version)).all()
        return rule, session.get(ShippedRule, key), list(versions)


def add_run(url: str, rule_id: str) -> None:
    with Session(get_engine(url)) as session, session.begin():
        session.add(RuleRun(id="run-1", rule_id=rule_id, rule_version=1, trigger="event",
                            status="completed", actions=[], context={}, correlation_id="c",
                            causation_depth=0, started_at=datetime.now(UTC)))


def edit(rule: dict, **changes) -> dict:
    return {"name": rule["name"], "description": rule["description"],
            "enabled": rule["enabled"], "trigger": rule["trigger"],
            "conditions": rule["conditions"], "actions": rule["actions"], **changes}


def test_an_unchanged_shipped_rule_is_upgraded_its_runs_kept(rules_url):
    assert seed.install(rules_url, [V1, OTHER]) == {"ticket-sla-breached": "installed",
                                                    "other-shipped": "installed"}
    add_run(rules_url, "ticket-sla-breached")
    rules(rules_url).set_rule_enabled("ticket-sla-breached", False)  # not a change of content

    assert seed.install(rules_url, [V2, OTHER]) == {"ticket-sla-breached": "upgraded",
                                                    "other-shipped": "present"}
    rule, record, versions = stored(rules_url)
    assert (rule.version, versions) == (2, [1, 2])
    assert rule.definition["actions"][0]["to"] == ["owner", "field:group_manager_id"]
    assert rule.enabled is False  # the admin's switch stays
    assert (record.installed_version, record.update_available) == (2, False)
    with Session(get_engine(rules_url)) as session:
        assert session.get(RuleRun, "run-1").rule_version == 1  # its history kept

    assert seed.install(rules_url, [V2, OTHER])["ticket-sla-breached"] == "present"
    assert stored(rules_url)[0].version == 2
    # an admin reading it: nothing waits
    read = rules(rules_url).get_rule("ticket-sla-breached", principal=ADMIN)
    assert read["shipped_update_available"] is False and "shipped_update" not in read


def test_an_edited_shipped_rule_is_kept_and_marked_until_an_admin_adopts(rules_url):
    seed.install(rules_url, [V1])
    service = rules(rules_url)
    current = service.get_rule("ticket-sla-breached", principal=ADMIN)
    service.update_rule("ticket-sla-breached", edit(current, conditions='priority == "high"'),
                        principal=ADMIN)

    assert seed.install(rules_url, [V1]) == {"ticket-sla-breached": "edited"}
    assert stored(rules_url)[1].update_available is False  # nothing new shipped
    assert seed.install(rules_url, [V2]) == {"ticket-sla-breached": "update_available"}
    rule, record, versions = stored(rules_url)
    assert (rule.version, versions) == (2, [1, 2])
    assert rule.definition["conditions"] == 'priority == "high"'
    assert rule.definition["actions"][0]["to"] == ["owner"]
    assert record.update_available is True

    read = service.get_rule("ticket-sla-breached", principal=ADMIN)
    assert read["shipped_update_available"] is True
    assert read["shipped_update"]["actions"][0]["to"] == ["owner", "field:group_manager_id"]
    assert read["shipped_update"]["conditions"] == ""
    assert read["shipped_update"]["name"] == V2["name"]
    # the admin's list says so too (the console marks it there)
    listed = {r["key"]: r for r in service.list_rules({}, principal=ADMIN)["items"]}
    assert listed["ticket-sla-breached"]["shipped_update_available"] is True
    # a manager sees the organisation's rule, not the offer, and may not take it
    as_manager = service.get_rule("ticket-sla-breached", principal=MANAGER)
    assert "shipped_update_available" not in as_manager and "shipped_update" not in as_manager
    listed = {r["key"]: r for r in service.list_rules({}, principal=MANAGER)["items"]}
    assert "shipped_update_available" not in listed["ticket-sla-breached"]
    with pytest.raises(Forbidden):
        service.adopt_shipped_rule("ticket-sla-breached", principal=MANAGER)
    with pytest.raises(NotFound):
        service.adopt_shipped_rule("no-such-rule", principal=ADMIN)
    # the seed again: still kept, still offered
    assert seed.install(rules_url, [V2]) == {"ticket-sla-breached": "update_available"}

    adopted = service.adopt_shipped_rule("ticket-sla-breached", principal=ADMIN)
    assert adopted["version"] == 3 and adopted["shipped_update_available"] is False
    assert adopted["actions"][0]["to"] == ["owner", "field:group_manager_id"]
    assert adopted["conditions"] == ""
    listed = {r["key"]: r for r in service.list_rules({}, principal=ADMIN)["items"]}
    assert listed["ticket-sla-breached"]["shipped_update_available"] is False
    rule, record, versions = stored(rules_url)
    assert (rule.version, versions, rule.updated_by) == (3, [1, 2, 3], "admin-1")
    assert (record.installed_version, record.update_available) == (3, False)
    with pytest.raises(PreconditionFailed):
        service.adopt_shipped_rule("ticket-sla-breached", principal=ADMIN)
    assert seed.install(rules_url, [V2]) == {"ticket-sla-breached": "present"}
    # and, unchanged since, it follows the next shipped version again
    v3 = {**copy.deepcopy(V2), "conditions": "true"}
    assert seed.install(rules_url, [v3]) == {"ticket-sla-breached": "upgraded"}
    assert stored(rules_url)[0].version == 4


def test_a_rule_an_older_seed_installed_is_upgraded_while_nobody_edited_it(rules_url):
    seed.install(rules_url, [V1, OTHER])
    service = rules(rules_url)
    current = service.get_rule("other-shipped", principal=ADMIN)
    service.update_rule("other-shipped", edit(current, name="renamed"), principal=ADMIN)
    with Session(get_engine(rules_url)) as session, session.begin():
        session.execute(delete(ShippedRule))  # as an older seed left it: nothing recorded
    v2_other = {**copy.deepcopy(V2), "key": "other-shipped", "name": OTHER["name"]}

    assert seed.install(rules_url, [V2, v2_other]) == {"ticket-sla-breached": "upgraded",
                                                       "other-shipped": "update_available"}
    assert stored(rules_url, "other-shipped")[0].name == "renamed"


def test_manager_edit_of_an_organisation_rule_is_not_possible_and_admins_only_adopt(rules_url):
    """A shipped rule is the organisation's: a manager can neither change nor adopt it."""
    seed.install(rules_url, [V1])
    service = rules(rules_url, actor="mgr-1")
    current = service.get_rule("ticket-sla-breached", principal=MANAGER)
    with pytest.raises((Forbidden, NotFound)):
        service.update_rule("ticket-sla-breached", edit(current, name="mine"),
                            principal=MANAGER)
    with pytest.raises(Forbidden):
        service.adopt_shipped_rule("ticket-sla-breached",
                                   principal={**MANAGER, "role": "sales_rep"})
