"""The leads domain's transitions: each checks and then changes a lead, or changes nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from services.leads.domain import capture, lifecycle, scoring
from services.leads.domain.scoring_model import DEFAULT_SCORING_MODEL, validate_scoring_model
from shared.errors import Conflict, Forbidden, PreconditionFailed, ValidationFailed

EARLIER = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
REP = {"all": False, "owner_ids": ["u-rep"], "include_pool": True, "manage_pool": False}
MANAGER = {"all": False, "owner_ids": ["u-mgr", "u-rep"], "include_pool": True,
           "manage_pool": True}


@dataclass
class StoredLead:
    """A plain object with the attributes the domain reads and changes (its LeadRecord)."""

    id: str = "l-1"
    status: str = "new"
    disqualify_reason: str | None = None
    qualification: str | None = None
    score: int = 0
    score_breakdown: dict[str, Any] = field(default_factory=dict)
    owner_id: str | None = None
    claimed_at: datetime | None = None
    merged_into_id: str | None = None
    updated_at: datetime = EARLIER
    last_activity_at: datetime | None = None
    conversion: dict[str, Any] | None = None
    company: str | None = None
    title: str | None = None
    email: str | None = None
    phone: str | None = None
    region: str | None = None
    industry: str | None = None
    campaign: str | None = None
    product_interest: list[str] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)


# -- status ------------------------------------------------------------------------------------


def test_change_status_moves_and_returns_the_previous_status() -> None:
    lead = StoredLead(status="contacted")
    assert lifecycle.change_status(lead, "disqualified", "no budget", NOW) == "contacted"
    assert (lead.status, lead.disqualify_reason) == ("disqualified", "no budget")
    assert lead.updated_at == lead.last_activity_at == NOW
    assert lifecycle.change_status(lead, "new", "reopened", NOW) == "disqualified"
    assert (lead.status, lead.disqualify_reason) == ("new", None)


def test_a_refused_status_change_changes_nothing() -> None:
    lead = StoredLead(status="converted")
    with pytest.raises(PreconditionFailed):
        lifecycle.change_status(lead, "new", None, NOW)
    lead = StoredLead(status="new")
    with pytest.raises(ValidationFailed) as caught:
        lifecycle.change_status(lead, "disqualified", " ", NOW)
    assert "reason" in caught.value.errors
    assert (lead.status, lead.updated_at) == ("new", EARLIER)


def test_convert_keeps_what_the_lead_became_and_happens_once() -> None:
    lead = StoredLead(status="qualified")
    data = {"lead_id": "l-1", "customer_id": "c-1", "contact_id": "p-1",
            "opportunity_id": "o-1", "converted_by": "u-rep", "ignored": "x"}
    assert lifecycle.convert(lead, data, "2026-06-01T12:00:00+00:00", NOW) == "qualified"
    assert lead.status == "converted"
    assert lead.conversion == {"customer_id": "c-1", "contact_id": "p-1",
                               "opportunity_id": "o-1", "converted_by": "u-rep",
                               "converted_at": "2026-06-01T12:00:00+00:00"}
    assert lifecycle.convert(lead, {"customer_id": "c-2"}, "later", NOW) is None
    assert lead.conversion["customer_id"] == "c-1"


# -- the public pool -----------------------------------------------------------------------------


def test_claim_takes_a_pool_lead_for_someone_of_the_scope() -> None:
    lead = StoredLead()
    lifecycle.claim(lead, "u-rep", REP, NOW)
    assert (lead.owner_id, lead.claimed_at, lead.updated_at) == ("u-rep", NOW, NOW)


def test_claim_refusals_leave_the_lead_as_it_was() -> None:
    lead = StoredLead()
    with pytest.raises(Forbidden):
        lifecycle.claim(lead, "u-other", REP, NOW)
    owned = StoredLead(owner_id="u-rep")
    with pytest.raises(PreconditionFailed, match="you already own this lead"):
        lifecycle.claim(owned, "u-rep", REP, NOW)
    held = StoredLead(owner_id="u-rep")
    with pytest.raises(PreconditionFailed, match="owned by user u-rep"):
        lifecycle.claim(held, "u-mgr", MANAGER, NOW)
    assert (lead.owner_id, owned.owner_id, held.owner_id) == (None, "u-rep", "u-rep")


def test_release_returns_the_owner_and_puts_the_lead_in_the_pool() -> None:
    lead = StoredLead(owner_id="u-rep", claimed_at=EARLIER)
    assert lifecycle.release(lead, "u-mgr", MANAGER, NOW) == "u-rep"
    assert (lead.owner_id, lead.claimed_at, lead.updated_at) == (None, None, NOW)
    with pytest.raises(PreconditionFailed):
        lifecycle.release(lead, "u-mgr", MANAGER, NOW)


def test_only_the_owner_or_a_manager_releases() -> None:
    lead = StoredLead(owner_id="u-rep")
    with pytest.raises(Forbidden):
        lifecycle.release(lead, "u-someone", {"all": False, "owner_ids": []}, NOW)
    assert lead.owner_id == "u-rep"


def test_assign_reports_the_previous_owner_or_no_change() -> None:
    lead = StoredLead()
    change = lifecycle.assign(lead, "u-rep", MANAGER, NOW)
    assert change == lifecycle.OwnerChange(previous_owner_id=None)
    assert (lead.owner_id, lead.claimed_at) == ("u-rep", NOW)
    assert lifecycle.assign(lead, "u-rep", MANAGER, datetime.now(UTC)) is None
    assert lead.claimed_at == NOW
    with pytest.raises(Forbidden):
        lifecycle.assign(lead, "u-outsider", MANAGER, NOW)
    assert lead.owner_id == "u-rep"


# -- merges ------------------------------------------------------------------------------------


def test_merge_fills_gaps_and_retires_the_source() -> None:
    target = StoredLead(id="t", owner_id="u-rep", company="阿克米", product_interest=["MES"],
                        attributes={"budget": "10万"})
    source = StoredLead(id="s", owner_id="u-rep", company="别的公司", email="a@b.cn",
                        product_interest=["ERP"], attributes={"budget": "50万", "size": "大"})
    lifecycle.check_merge(target, source, REP)
    values = {"company": source.company, "email": source.email,
              "product_interest": source.product_interest, "attributes": source.attributes}
    lifecycle.merge(target, source, values, NOW)
    assert (target.company, target.email) == ("阿克米", "a@b.cn")
    assert target.product_interest == ["ERP", "MES"]
    assert target.attributes == {"budget": "10万", "size": "大"}
    assert (source.merged_into_id, source.updated_at, target.updated_at) == ("t", NOW, NOW)


def test_merging_needs_edit_rights_on_both_and_names_which() -> None:
    mine, pool = StoredLead(id="mine", owner_id="u-rep"), StoredLead(id="pool")
    with pytest.raises(Forbidden) as caught:
        lifecycle.check_merge(mine, pool, REP)
    assert caught.value.extra == {"field": "source_id"}
    lifecycle.check_merge(mine, pool, MANAGER)


def test_already_merged_names_the_survivor_only_when_visible() -> None:
    lead = StoredLead(id="s", merged_into_id="t")
    shown = lifecycle.already_merged(lead, "source_id", "t")
    hidden = lifecycle.already_merged(lead, "source_id", None)
    assert isinstance(shown, Conflict) and shown.extra == {"field": "source_id",
                                                           "existing_id": "t"}
    assert hidden.extra == {"field": "source_id", "existing_id": None}
    assert "t" not in hidden.detail.split()


# -- capture and scoring -------------------------------------------------------------------------


def test_new_lead_is_unscored_in_the_pool_or_held_by_its_owner() -> None:
    fields = {"name": "张伟", "company": "深圳市腾讯计算机系统有限公司", "source": "web"}
    pooled = capture.new_lead("l-9", fields, None, NOW)
    assert pooled["company_key"] == "腾讯计算机系统" and pooled["company_block"] == "腾讯"
    assert (pooled["status"], pooled["score"], pooled["owner_id"], pooled["claimed_at"]) == (
        "new", 0, None, None)
    held = capture.new_lead("l-9", {**fields, "company": None}, "u-rep", NOW)
    assert (held["owner_id"], held["claimed_at"], held["company_key"]) == ("u-rep", NOW, None)


def test_normalise_contacts_rewrites_both_or_names_every_bad_one() -> None:
    fields = {"email": "Zhang@Example.CN", "phone": "138 0013 8000"}
    capture.normalise_contacts(fields, "CN")
    assert fields == {"email": "zhang@example.cn", "phone": "+8613800138000"}
    with pytest.raises(ValidationFailed) as caught:
        capture.normalise_contacts({"email": "nope", "phone": "12ab"}, "CN")
    assert set(caught.value.errors) == {"email", "phone"}


def test_rescore_stores_the_score_and_only_raises_the_qualification() -> None:
    model = validate_scoring_model(DEFAULT_SCORING_MODEL)
    lead = StoredLead(qualification="sql")
    values = {"title": "采购总监", "industry": "制造业", "source": "website"}
    assert scoring.rescore(lead, values, [], model) == 0
    assert lead.score == 30 and lead.score_breakdown["model_version"] == 1
    assert lead.qualification == "sql", "never lowered automatically"
    assert lead.updated_at == EARLIER, "a first scoring is no update"
    previous = scoring.rescore(lead, values, ["requested_demo"], model, NOW)
    assert (previous, lead.score, lead.updated_at) == (30, 55, NOW)
