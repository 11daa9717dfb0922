"""Routing rules' matching and the member choice of the service desk's groups
(services/service_desk/domain/routing.py), and the web forms' spam checks (domain/forms.py)."""

from __future__ import annotations

import pytest

from services.service_desk.domain import forms, routing
from services.service_desk.domain.routing import Candidate, RoutingRule

ROUTER = {"type": "incident", "category": "网络", "product": "Router-X", "customer_tier": "vip",
          "language": "zh"}


def test_a_rule_matches_when_every_listed_condition_does():
    assert routing.rule_matches(RoutingRule("r", "g", {}), ROUTER)  # no condition: anything
    assert routing.rule_matches(RoutingRule("r", "g", {"products": ["router-x"]}), ROUTER)
    assert routing.rule_matches(RoutingRule("r", "g", {"products": ["Switch", "Router-X"],
                                                       "languages": ["ZH"]}), ROUTER)
    assert not routing.rule_matches(RoutingRule("r", "g", {"products": ["Router-X"],
                                                           "customer_tiers": ["gold"]}), ROUTER)
    assert not routing.rule_matches(RoutingRule("r", "g", {"types": ["question"]}), ROUTER)
    # a ticket without the field does not match a rule that lists values for it
    assert not routing.rule_matches(RoutingRule("r", "g", {"products": ["Router-X"]}),
                                    {**ROUTER, "product": None})
    assert not routing.rule_matches(RoutingRule("r", "g", {}, enabled=False), ROUTER)


def test_the_first_matching_rule_wins_then_the_default_group():
    rules = [RoutingRule("vip", "g-vip", {"customer_tiers": ["vip"], "types": ["question"]}),
             RoutingRule("router", "g-router", {"products": ["Router-X"]}),
             RoutingRule("any-zh", "g-zh", {"languages": ["zh"]})]
    choice = routing.choose_group(rules, ROUTER, "g-default")
    assert (choice.group_id, choice.rule_id) == ("g-router", "router")
    choice = routing.choose_group(rules, {"language": "en"}, "g-default")
    assert (choice.group_id, choice.rule_id, choice.reason) == \
        ("g-default", None, "the default group")
    assert routing.choose_group(rules, {"language": "en"}, None).group_id is None


def test_round_robin_alternates_and_skips_the_unavailable_and_full():
    members = [Candidate("b"), Candidate("a"), Candidate("c", available=False)]
    first = routing.choose_member(members, "round_robin", None, {}, False)
    assert first.user_id == "a"
    second = routing.choose_member(members, "round_robin", "a", {}, False)
    assert second.user_id == "b"
    third = routing.choose_member(members, "round_robin", "b", {}, False)
    assert third.user_id == "a" and third.skipped == {"c": "unavailable"}
    full = [Candidate("a", capacity=2, load=2), Candidate("b")]
    choice = routing.choose_member(full, "round_robin", "b", {}, False)
    assert choice.user_id == "b" and "at capacity" in choice.skipped["a"]
    # the last one left the group: the rotation goes on after where they sorted
    assert routing.choose_member(members, "round_robin", "aa", {}, False).user_id == "b"


def test_least_loaded_takes_the_fewest_open_tickets_ties_in_rotation():
    members = [Candidate("a", load=3), Candidate("b", load=1), Candidate("c", load=1)]
    choice = routing.choose_member(members, "least_loaded", None, {}, False)
    assert choice.user_id == "b" and choice.reason.startswith("least loaded (1 open)")
    assert routing.choose_member(members, "least_loaded", "b", {}, False).user_id == "c"


def test_skills_prefer_the_skilled_and_fall_back_to_anyone():
    members = [Candidate("a", skills={"products": ["Router-X"], "languages": ["en"]}),
               Candidate("b", skills={"products": ["router-x"], "languages": ["zh", "en"]}),
               Candidate("c", skills={})]
    choice = routing.choose_member(members, "round_robin", None, ROUTER, True)
    assert choice.user_id == "b" and "skills matched" in choice.reason
    assert choice.skipped == {"a": "lacks the ticket's skills", "c": "lacks the ticket's skills"}
    nobody = routing.choose_member(members, "round_robin", None, {"product": "Phone"}, True)
    assert nobody.user_id == "a" and "any member" in nobody.reason
    # without skills matching the skills are not looked at
    assert routing.choose_member(members, "round_robin", None, ROUTER, False).user_id == "a"


def test_no_member_no_choice():
    assert routing.choose_member([], "round_robin", None, {}, False).user_id is None
    with pytest.raises(ValueError):
        routing.choose_member([Candidate("a")], "random", None, {}, False)


def test_form_tokens_and_fill_time_stamps():
    token = forms.new_token()
    stored = forms.token_hash(token)
    assert forms.token_matches(token, stored)
    assert not forms.token_matches(token + "x", stored) and not forms.token_matches(None, stored)
    key = forms.new_signing_key()
    stamp = forms.issue_stamp(key, "form1", 1_000_000)
    assert forms.spam_reason(stamp, None, key, "form1", 1_000_010, 3) is None
    assert forms.spam_reason(stamp, "http://spam", key, "form1", 1_000_010, 3) == \
        "honeypot filled"
    assert "less than 3 s" in forms.spam_reason(stamp, None, key, "form1", 1_000_001, 3)
    assert forms.spam_reason(stamp, None, key, "form2", 1_000_010, 3) == "bad fill-time stamp"
    assert forms.spam_reason(stamp, None, "other", "form1", 1_000_010, 3) == \
        "bad fill-time stamp"
    assert forms.spam_reason(None, None, key, "form1", 1_000_010, 3) == "no fill-time stamp"
    assert forms.spam_reason(stamp, None, key, "form1", 1_000_000 + 2 * 86400, 3) == \
        "fill-time stamp expired"
    assert forms.spam_reason(None, None, key, "form1", 1_000_010, 0) is None  # check off


def test_rate_window_and_origins():
    assert forms.window(120.5) == (120, 60)
    assert forms.window(179) == (120, 1)
    assert forms.origin_allowed(None, [])
    assert forms.origin_allowed("https://www.example.cn", ["https://WWW.example.cn/"])
    assert not forms.origin_allowed("https://evil.example", ["https://www.example.cn"])


def test_what_may_be_merged():
    from services.service_desk.domain import merging
    from shared.errors import Conflict, PreconditionFailed, ValidationFailed

    assert merging.check_merge("a", "b", "open", "new", None) is True
    assert merging.check_merge("a", "b", "closed", "new", "b") is False  # done already
    with pytest.raises(ValidationFailed):
        merging.check_merge("a", "a", "open", "open", None)
    with pytest.raises(Conflict):
        merging.check_merge("a", "b", "closed", "open", "c")
    with pytest.raises(PreconditionFailed):
        merging.check_merge("a", "b", "open", "closed", None)
    with pytest.raises(PreconditionFailed):
        merging.check_merge("a", "b", "closed", "open", None)
    note = merging.target_note("T-000002", "又掉线了", "li@example.cn", ["第一次", "", "补充"])
    assert note == "合并自 T-000002（li@example.cn）：又掉线了\n\n第一次\n\n补充"
