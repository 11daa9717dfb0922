"""What the seed does with a present shipped rule (services/rules/domain/shipped.py)."""

from __future__ import annotations

from services.rules.domain import shipped

DEFINITION = {"trigger": {"type": "event", "event": "leads.lead_created"}, "conditions": "",
              "actions": [{"type": "notify", "to": ["owner"], "title": "x"}]}
OLD = shipped.content_hash(shipped.content("r", None, DEFINITION))
NEW = shipped.content_hash(shipped.content("r", None, {**DEFINITION, "conditions": "true"}))
EDIT = shipped.content_hash(shipped.content("mine", None, DEFINITION))


def test_the_hash_is_of_the_content_whatever_the_order_of_its_keys():
    reordered = dict(reversed(list(DEFINITION.items())))
    assert shipped.content_hash(shipped.content("r", None, reordered)) == OLD
    assert len({OLD, NEW, EDIT}) == 3
    # what is not shipped (enabled, the rule's key) is not part of it
    assert shipped.content_hash(shipped.content(
        "r", None, {**DEFINITION, "enabled": False, "key": "k"})) == OLD


def test_unchanged_rules_follow_the_shipped_ones_edited_ones_are_offered_the_new():
    installed = shipped.Installed(version=1, hash=OLD)
    assert shipped.decide(OLD, 1, OLD, installed) == shipped.PRESENT
    assert shipped.decide(NEW, 1, OLD, installed) == shipped.UPGRADED
    assert shipped.decide(OLD, 2, EDIT, installed) == shipped.EDITED
    assert shipped.decide(NEW, 2, EDIT, installed) == shipped.UPDATE_AVAILABLE
    assert shipped.decide(NEW, 2, NEW, installed) == shipped.PRESENT  # edited to the same
    # an older seed's install edited since: unknown, so any shipped change is offered
    assert shipped.decide(NEW, 2, EDIT, None) == shipped.UPDATE_AVAILABLE
    assert shipped.decide(EDIT, 2, EDIT, None) == shipped.PRESENT
