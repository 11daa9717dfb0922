"""The shared kernel: strict schemas, scope and paging, the naming convention, normalisers."""

from __future__ import annotations

import pytest
from marshmallow import ValidationError
from sqlalchemy import CheckConstraint, Column, Integer, Table, UniqueConstraint
from sqlalchemy.schema import CreateTable

from shared.errors import ValidationFailed
from shared.kernel import naming, normalise, schemas


class Thing(schemas.StrictSchema):
    from marshmallow import fields

    name = fields.String(required=True)


def test_strict_schema_names_the_unknown_key() -> None:
    with pytest.raises(ValidationError) as caught:
        Thing().load({"name": "x", "colour": "red"})
    assert caught.value.messages == {"colour": ["Unknown field."]}


def test_scope_defaults_and_strictness() -> None:
    assert schemas.ScopeSchema().load({}) == {
        "all": False, "owner_ids": [], "include_pool": False, "manage_pool": False}
    assert schemas.ScopeSchema().load({"owner_ids": ["u1"], "include_pool": True})[
        "owner_ids"] == ["u1"]
    with pytest.raises(ValidationError) as caught:
        schemas.ScopeSchema().load({"team_ids": ["t"]})
    assert "team_ids" in caught.value.messages


@pytest.mark.parametrize("limit", [0, 201, -1])
def test_page_limit_is_bounded(limit: int) -> None:
    with pytest.raises(ValidationError) as caught:
        schemas.PageSchema().load({"limit": limit})
    assert list(caught.value.messages) == ["limit"]


def test_page_defaults() -> None:
    assert schemas.PageSchema().load({}) == {"cursor": None, "limit": 50}


def test_naming_convention_names_every_kind_of_constraint() -> None:
    metadata = naming.service_metadata()
    table = Table("widgets", metadata, Column("id", Integer, primary_key=True),
                  Column("code", Integer), Column("size", Integer),
                  UniqueConstraint("code"), CheckConstraint("size > 0", name="size_positive"))
    ddl = str(CreateTable(table))
    assert "CONSTRAINT pk_widgets PRIMARY KEY" in ddl
    assert "CONSTRAINT uq_widgets_code UNIQUE" in ddl
    assert "CONSTRAINT ck_widgets_size_positive CHECK" in ddl


@pytest.mark.parametrize("raw, expected", [
    ("13800138000", "+8613800138000"),
    ("+86 138 0013 8000", "+8613800138000"),
    ("１３８００１３８０００", "+8613800138000"),
    ("010-12345678", "+861012345678"),
])
def test_phone_numbers_are_e164(raw: str, expected: str) -> None:
    assert normalise.normalise_phone(raw) == expected


def test_phone_errors_name_the_field() -> None:
    for raw in ("1-800-FLOWERS", "12", ""):
        with pytest.raises(ValidationFailed) as caught:
            normalise.normalise_phone(raw, field="mobile")
        assert list(caught.value.errors) == ["mobile"]


def test_email_is_lower_cased_and_full_width_accepted() -> None:
    assert normalise.normalise_email("ＺＨＡＮＧ@Example.COM") == "zhang@example.com"
    with pytest.raises(ValidationFailed) as caught:
        normalise.normalise_email("not an address", field="contact_email")
    assert list(caught.value.errors) == ["contact_email"]


@pytest.mark.parametrize("a, b", [
    ("深圳市腾讯计算机系统有限公司", "腾讯计算机系统"),
    ("腾讯科技（深圳）有限公司", "腾讯科技"),
    ("ACME Co., Ltd.", "acme"),
    ("The ACME Corporation", "acme"),
    ("广东省深圳市华为技术有限公司", "华为技术"),
    ("招商银行深圳分行", "招商银行"),
])
def test_company_keys(a: str, b: str) -> None:
    assert normalise.company_key(a) == b


def test_similarity_does_not_rate_subsidiaries_as_the_same() -> None:
    assert normalise.company_similarity("腾讯", "腾讯音乐娱乐") < 90
    assert normalise.company_similarity("ACME Ltd", "acme limited") == 100.0


def test_matching_forms_survive_invalid_stored_values() -> None:
    assert normalise.phone_for_matching("138-0013-8000") == "+8613800138000"
    assert normalise.phone_for_matching("12") == "12"
    assert normalise.email_for_matching("Not Valid") == "not valid"
