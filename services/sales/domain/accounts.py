"""Customers (accounts): name keys for fuzzy matching and search, duplicate detection, tags,
tiers and lifecycle stages. Pure Python."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

# The enumerations live in the contract (callers build payloads with them); the rules that use
# them are here.
from services.sales.contract import CHANNELS as CHANNELS
from services.sales.contract import CONTACT_ROLES as CONTACT_ROLES
from services.sales.contract import LIFECYCLE_STAGES as LIFECYCLE_STAGES
from services.sales.contract import TIERS as TIERS
from shared.errors import Conflict, ValidationFailed
from shared.kernel.normalise import company_key, company_similarity
from shared.kernel.normalise import fold as fold
from shared.kernel.normalise import normalise_email as normalise_email
from shared.kernel.normalise import normalise_phone as normalise_phone

NAME_MATCH_THRESHOLD = 90.0
MAX_TAGS = 30
MAX_SEARCH_TERMS = 5


def name_key(name: str) -> str:
    """A company name without case, spacing, punctuation, legal form or a leading region, the
    same key the leads service gives the lead's company (the shared kernel's):
    "深圳市腾讯计算机系统有限公司" -> "腾讯计算机系统", "ACME Co., Ltd." -> "acme". A name that is
    nothing but noise keys as itself, folded."""
    return company_key(name) or fold(name).replace(" ", "")


def name_block(key: str) -> str | None:
    """The first two characters of the key: candidates for a fuzzy match share them."""
    return key[:2] or None


def name_similarity(a: str, b: str) -> float:
    """0..100 (the kernel's company similarity), so "腾讯" does not match every "腾讯xxx"."""
    return company_similarity(a, b)


@dataclass(frozen=True)
class CustomerMatch:
    customer_id: str
    name: str
    reason: str  # credit_code | name
    score: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_matches(
    name: str | None,
    credit_code: str | None,
    candidates: Iterable[tuple[str, str, str | None]],
    threshold: float = NAME_MATCH_THRESHOLD,
) -> list[CustomerMatch]:
    """Duplicates among (id, name, credit_code) candidates: the same credit code first (exact),
    then names at least `threshold` similar, best first."""
    exact: list[CustomerMatch] = []
    fuzzy: list[CustomerMatch] = []
    for customer_id, other_name, other_code in candidates:
        if credit_code and other_code and credit_code == other_code:
            exact.append(CustomerMatch(customer_id, other_name, "credit_code", 100.0))
            continue
        if name:
            score = name_similarity(name, other_name)
            if score >= threshold:
                fuzzy.append(CustomerMatch(customer_id, other_name, "name", score))
    fuzzy.sort(key=lambda m: -m.score)
    return exact + fuzzy


def normalise_tags(tags: Iterable[Any], field: str = "tags") -> list[str]:
    """Trimmed, NFKC, de-duplicated (first spelling kept), at most MAX_TAGS of 1..32 chars."""
    result: list[str] = []
    seen: set[str] = set()
    problems: list[str] = []
    for index, tag in enumerate(tags):
        if not isinstance(tag, str) or not tag.strip():
            problems.append(f"item {index}: a non-empty string is required")
            continue
        clean = unicodedata.normalize("NFKC", tag).strip()
        if len(clean) > 32:
            problems.append(f"item {index}: at most 32 characters")
            continue
        if clean.casefold() not in seen:
            seen.add(clean.casefold())
            result.append(clean)
    if len(result) > MAX_TAGS:
        problems.append(f"at most {MAX_TAGS} tags")
    if problems:
        raise ValidationFailed.for_fields({field: problems})
    return result


def apply_tag_change(current: list[str], add: Iterable[str], remove: Iterable[str]) -> list[str]:
    removed = {t.casefold() for t in normalise_tags(remove, "remove")}
    kept = [t for t in current if t.casefold() not in removed]
    return normalise_tags([*kept, *normalise_tags(add, "add")])


def search_terms(q: str) -> list[str]:
    """At most 5 distinct folded terms; Chinese has no spaces, so "腾讯科技" is one term."""
    terms: list[str] = []
    for word in fold(q).split():
        term = word[:100]
        if term not in terms:
            terms.append(term)
        if len(terms) == MAX_SEARCH_TERMS:
            break
    return terms


def search_text(name: str, tags: Iterable[str]) -> str:
    """What a search matches against besides the name: the key and the tags, folded."""
    return " ".join([name_key(name), *(fold(t) for t in tags)])


# -- transitions of a customer (they check and change; the use cases store and publish) ------


def retag(customer: Any, add: Iterable[str], remove: Iterable[str], now: datetime) -> bool:
    """Add and remove tags; True when the tags changed."""
    tags = apply_tag_change(customer.tags or [], add, remove)
    if tags == (customer.tags or []):
        return False
    customer.tags, customer.updated_at = tags, now
    return True


def hand_over(record: Any, owner_id: str, team_id: str | None, now: datetime) -> None:
    """Give a record (a customer's open opportunity) to `owner_id`, filed under `team_id`
    when given."""
    record.owner_id = owner_id
    if team_id is not None:
        record.team_id = team_id
    record.updated_at = now


def assign(customer: Any, owner_id: str, team_id: str | None, now: datetime) -> bool:
    """Give a customer to `owner_id` (see `hand_over`); False when it is theirs (and that
    team's) already."""
    if customer.owner_id == owner_id and (team_id is None or team_id == customer.team_id):
        return False
    hand_over(customer, owner_id, team_id, now)
    return True


def promote_on_win(customer: Any, now: datetime) -> bool:
    """A won deal makes a prospect a customer; True when it did."""
    if customer.lifecycle_stage != "prospect":
        return False
    customer.lifecycle_stage, customer.updated_at = "customer", now
    return True


def record_activity(customer: Any, occurred_at: datetime) -> None:
    """A follow-up happened: the customer's last activity is the latest one."""
    if customer.last_activity_at is None or occurred_at > customer.last_activity_at:
        customer.last_activity_at = occurred_at


MERGE_FILLS = ("tier", "region", "industry", "source", "campaign", "phone", "website", "address")


def check_merge(target: Any, source: Any) -> None:
    """Two customers with different credit codes are different companies."""
    if source.id == target.id:
        raise ValidationFailed.for_fields({"source_id": ["cannot merge a customer into itself"]})
    if source.credit_code and target.credit_code and source.credit_code != target.credit_code:
        raise Conflict("the two customers have different credit codes: they are different "
                       "companies", {"field": "source_id", "existing_id": source.id})


def merge(target: Any, source: Any, now: datetime, release_code: Callable[[], None]) -> None:
    """Merge the duplicate `source` into `target` (after `check_merge`): what the target lacks
    is taken from the source, tags and custom values are joined (the target's win), and the
    source is kept as merged into the target. The credit code is unique: `release_code` is
    called after the source gives its code up and before the target takes it, so the store
    can see the first change before the second."""
    check_merge(target, source)
    if source.credit_code and not target.credit_code:
        code, source.credit_code = source.credit_code, None
        release_code()
        target.credit_code = code
    for name in MERGE_FILLS:
        if not getattr(target, name) and getattr(source, name):
            setattr(target, name, getattr(source, name))
    target.tags = normalise_tags([*(target.tags or []), *(source.tags or [])])
    target.custom = {**(source.custom or {}), **(target.custom or {})}
    if source.last_activity_at and (
        not target.last_activity_at or source.last_activity_at > target.last_activity_at
    ):
        target.last_activity_at = source.last_activity_at
    source.merged_into_id = target.id
    source.updated_at = target.updated_at = now
