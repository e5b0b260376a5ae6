"""lake.moderation: the blocklist filter and the pluggable factory (pure)."""

from __future__ import annotations

from lake.config import Settings
from lake.moderation import Blocklist, Verdict, get_filter, moderate_all


def test_the_blocklist_matches_whole_words_and_phrases_in_any_case():
    check = Blocklist(("knife", "red  star"))
    assert check("a small Knife on the left") == Verdict("", "blocklist")
    assert check("a large red star above a circle").filtered
    assert check("a knifed square").text == "a knifed square"  # whole words only
    assert check("a red square and a star") == Verdict("a red square and a star")
    assert Blocklist(())("anything").filtered is False


def test_moderate_all_counts_what_it_withheld():
    assert moderate_all(["a knife", "a cat", "knife"], Blocklist(("knife",))) == (["", "a cat", ""], 2)


def shout(settings):  # a filter factory, as `caption_filter` names one
    return lambda text: Verdict(text.upper())


def test_the_configured_filter_is_the_blocklist_or_a_named_factory():
    assert get_filter(Settings(caption_blocklist=["gun"]))("a gun").filtered
    assert get_filter(Settings(caption_filter="tests.lake.test_moderation:shout"))("a cat").text == "A CAT"
