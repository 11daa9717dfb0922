"""Invoices (开票): pure rules, no database.

- The buyer's tax number is its unified social credit code (统一社会信用代码, GB 32100-2015):
  18 characters of the code set 0-9 and A-Z without I, O, S, V, Z; the 18th is the check
  character: with the values 0..30 of the code set and the weights 3^(i-1) mod 31 of the
  positions 1..17, check = 31 - (sum mod 31), 31 read as 0.
- Types: `special` 增值税专用发票 (a tax number is required: the buyer deducts the VAT),
  `normal` 增值税普通发票, `electronic` 电子发票 (全电/数电); statuses issued and void.
- Amounts: an invoice is positive; the issued invoices of a receipt or an instalment never
  exceed its amount, those of a contract never exceed the contract amount. A void invoice
  counts for nothing (its number stays used).
"""

from __future__ import annotations

from decimal import Decimal

from shared.errors import ValidationFailed

CODE_SET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
INVOICE_TYPES = ("special", "normal", "electronic")
INVOICE_STATUSES = ("issued", "void")


def tax_number_problem(value: str) -> str | None:
    """Why `value` is not a unified social credit code, or None."""
    if len(value) != 18:
        return "a unified social credit code has 18 characters"
    bad = sorted({c for c in value if c not in CODE_SET})
    if bad:
        return f"characters not allowed in a unified social credit code: {''.join(bad)}"
    total = sum(CODE_SET.index(c) * w for c, w in zip(value[:17], WEIGHTS, strict=True))
    expected = CODE_SET[(31 - total % 31) % 31]
    if value[17] != expected:
        return "the check character does not match (GB 32100-2015)"
    return None


def check_tax_number(value: str | None, invoice_type: str, field: str = "tax_number") -> None:
    if not value:
        if invoice_type == "special":
            raise ValidationFailed.for_fields(
                {field: ["a special VAT invoice (增值税专用发票) needs the buyer's tax number"]})
        return
    problem = tax_number_problem(value)
    if problem:
        raise ValidationFailed.for_fields({field: [problem]})


def check_amounts(amount: Decimal, contract_amount: Decimal, contract_invoiced: Decimal,
                  target: str | None = None, target_amount: Decimal | None = None,
                  target_invoiced: Decimal = Decimal(0)) -> None:
    """An invoice of `amount` fits: on the contract (the sum of its issued invoices stays
    within the contract amount) and, when it is for a receipt or an instalment (`target`),
    within that one's amount. Else a 422 on `amount` saying which limit."""
    if amount <= 0:
        raise ValidationFailed.for_fields({"amount": ["must be positive"]})
    if target is not None and target_amount is not None \
            and target_invoiced + amount > target_amount:
        raise ValidationFailed.for_fields({"amount": [
            f"the {target}'s invoices would total {target_invoiced + amount}, over its amount "
            f"{target_amount}"]})
    if contract_invoiced + amount > contract_amount:
        raise ValidationFailed.for_fields({"amount": [
            f"the contract's invoices would total {contract_invoiced + amount}, over the "
            f"contract amount {contract_amount}"]})


def invoiced_amounts(contract_amount: Decimal, issued: list[Decimal]) -> dict[str, Decimal]:
    invoiced = sum(issued, Decimal(0))
    return {"invoiced": invoiced, "uninvoiced": max(contract_amount - invoiced, Decimal(0))}
