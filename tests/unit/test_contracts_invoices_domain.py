"""Invoices (开票): the unified social credit code's check character (GB 32100-2015), the tax
number a special invoice needs, the invoice sums per receipt/instalment and per contract, and
the ERP's amounts (strings, never floats)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.contracts import contract
from services.contracts.domain import invoices as domain
from shared.errors import ValidationFailed

VALID = ("91350100M000100Y43", "91110000600037341L")


def with_check(first17: str) -> str:
    total = sum(domain.CODE_SET.index(c) * w for c, w in zip(first17, domain.WEIGHTS,
                                                             strict=True))
    return first17 + domain.CODE_SET[(31 - total % 31) % 31]


@pytest.mark.parametrize("code", VALID)
def test_published_codes_pass(code):
    assert domain.tax_number_problem(code) is None


def test_weights_are_powers_of_three_mod_31():
    assert domain.WEIGHTS == (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def test_a_changed_character_fails_the_check():
    code = VALID[0]
    changed = code[:5] + ("1" if code[5] != "1" else "2") + code[6:]
    assert "check character" in domain.tax_number_problem(changed)
    assert "check character" in domain.tax_number_problem(code[:17] + "0")


def test_check_value_zero_reads_zero():
    # a prefix whose weighted sum is a multiple of 31 takes "0" as its check character
    for tail in domain.CODE_SET:
        code = with_check("9111000060003734" + tail)
        assert domain.tax_number_problem(code) is None
        if code.endswith("0"):
            break
    else:
        pytest.fail("no prefix with check value 0 found")


@pytest.mark.parametrize("bad, why", [
    ("91350100M000100Y4", "18 characters"),
    ("91350100M000100Y433", "18 characters"),
    ("91350100I000100Y43", "not allowed"),  # I, O, S, V, Z are not in the code set
    ("91350100m000100Y43", "not allowed"),
])
def test_format(bad, why):
    assert why in domain.tax_number_problem(bad)


def test_special_invoice_needs_a_tax_number_and_names_the_field():
    with pytest.raises(ValidationFailed) as err:
        domain.check_tax_number(None, "special")
    assert list(err.value.errors) == ["tax_number"]
    domain.check_tax_number(None, "normal")
    domain.check_tax_number("", "electronic")
    with pytest.raises(ValidationFailed) as err:
        domain.check_tax_number("91350100M000100Y44", "normal")
    assert list(err.value.errors) == ["tax_number"]


def test_invoice_sums():
    d = Decimal
    domain.check_amounts(d("100"), d("1000"), d("900"))  # exactly the contract amount
    with pytest.raises(ValidationFailed) as err:
        domain.check_amounts(d("100.01"), d("1000"), d("900"))
    assert list(err.value.errors) == ["amount"] and "contract" in err.value.errors["amount"][0]
    domain.check_amounts(d("300"), d("1000"), d("0"), "receipt", d("500"), d("200"))
    with pytest.raises(ValidationFailed) as err:
        domain.check_amounts(d("300.01"), d("1000"), d("0"), "receipt", d("500"), d("200"))
    assert "receipt" in err.value.errors["amount"][0]
    with pytest.raises(ValidationFailed):
        domain.check_amounts(d("0"), d("1000"), d("0"))
    assert domain.invoiced_amounts(d("1000"), [d("100"), d("250.5")]) == {
        "invoiced": d("350.5"), "uninvoiced": d("649.5")}


@pytest.mark.parametrize("amount", [12.5, "12.505", "1e3", "-1", "0", "abc", None])
def test_erp_amount_must_be_a_decimal_string(amount):
    data = {"contract_number": "HT-2026-000001", "amount": amount, "reference": "P1",
            "paid_at": "2026-12-01T10:00:00+08:00"}
    assert "amount" in contract.ErpPaymentReceived().validate(data)


def test_erp_payment_names_a_contract_or_an_order_and_ignores_extra_fields():
    base = {"amount": "12.50", "reference": "P1", "paid_at": "2026-12-01T10:00:00+08:00"}
    assert "contract_number" in contract.ErpPaymentReceived().validate(base)
    loaded = contract.ErpPaymentReceived().load({**base, "order_number": "SO-2026-000001",
                                                 "erp_batch": 7})
    assert loaded["amount"] == Decimal("12.50") and "erp_batch" not in loaded
