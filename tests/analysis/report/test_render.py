"""The owner's report rendered from a hand-built breach story (breach.py): the facts it must tell,
in HTML, Markdown and JSON, the same in each, and nothing it must not show (a card number whole)."""

from __future__ import annotations

import dataclasses
import html as htmllib
import json
import re
import shutil

import pytest

from analysis.report import EmptyReportError, render_html, render_json, render_markdown
from analysis.report.facts import mask_pans
from analysis.story.model import Story, TimelineEvent
from tests.analysis.report.breach import (
    ATTACKER,
    C2,
    CARDS,
    FILES,
    OFFICE,
    SHA,
    SHOP,
    T0,
    TOOL_SHA,
    S,
    breach_story,
    breach_timeline,
    meta,
)

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot (Debian graphviz) not installed")


def _text(page: str) -> str:
    """The HTML's visible text, roughly: tags and the inline SVG pictures dropped, entities decoded."""
    page = re.sub(r"<svg.*?</svg>", " ", page, flags=re.S)
    page = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    return re.sub(r"\s+", " ", htmllib.unescape(re.sub(r"<[^>]+>", " ", page)))


def _section(text: str, start: str, end: str) -> str:
    return text[text.rindex(start):text.index(end, text.rindex(start))]


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(breach_story(), breach_timeline(), meta())


@pytest.fixture(scope="module")
def markdown() -> str:
    return render_markdown(breach_story(), breach_timeline(), meta())


def test_owner_summary_names_the_facts(page: str, markdown: str) -> None:
    for doc in (_text(page), markdown):
        summary = _section(doc, "Summary for the owner", "How they got in")
        assert f"Attacker: {ATTACKER}" in summary and f"Attacker: {OFFICE}" in summary
        assert "a computer inside your network" in summary  # the insider told apart
        assert f"patient zero): {SHOP}" in summary
        assert "Since Thu 28 May 2026, 20:26:40 UTC" in summary  # the first time
        assert "Yes, probably" in summary and "20:58:20 UTC" in summary  # still going on, last seen
        assert "3 payment card numbers" in summary and "120 e-mail addresses" in summary
        actions = summary[summary.index("What to do now"):]
        assert f"Disconnect {SHOP}, {FILES} from the network" in actions  # in the attackers' hands
        assert f"Block these addresses in your router or firewall: {C2}, {ATTACKER}" in actions
        assert "Start with the administrator account(s): admin" in actions
        assert "Call your card processor" in actions
        assert "Stop using FTP logins" in actions and "SSH logins" not in actions  # SSH is not clear text


def test_finished_incident_is_not_called_ongoing() -> None:
    doc = render_markdown(breach_story(ongoing=False), breach_timeline(), meta())
    still = doc[doc.index("**Still going on?**"):].split("\n", 1)[0]
    assert still.startswith("**Still going on?** No activity of these incidents was seen after")
    assert "Have 192.168.1.20, 192.168.1.10 checked, or reinstalled" in doc  # not the insider's own machine


def test_accounts_to_reset_administrator_first(page: str, markdown: str) -> None:
    for doc in (_text(page), markdown):
        accounts = _section(doc, "Accounts to reset", "Data at risk")
        assert accounts.index("admin") < accounts.index("shopftp")
        assert "alice" not in accounts.split("other account")[0]  # seen, not misused: not on the list
        assert "1 other account(s) were seen" in accounts
        assert "guessed by brute force after 700 tries" in accounts


def test_card_numbers_counted_and_never_whole(page: str, markdown: str) -> None:
    doc = render_json(breach_story(), breach_timeline(), meta())
    for out in (page, markdown, doc):
        for card in CARDS:
            assert card not in out
        assert "4111 **** **** 1111" in out  # the sentence that held it whole, masked
    data = _section(markdown, "## Data at risk", "## Draft notification")
    assert "| payment card numbers | 3 | 192.168.1.20 | 198.51.100.23 | http | cards.csv | yes |" in data
    assert "5555 **** **** 4444" in data
    assert "no, crossed inside in clear text" in data  # e-mail addresses over SMB inside the network


def test_mask_pans_leaves_hashes_and_non_card_numbers() -> None:
    assert mask_pans("card 4111-1111-1111-1111 and 4111 1111 1111 1111.") == \
        "card 4111 **** **** 1111 and 4111 **** **** 1111."
    assert mask_pans("order 4111111111111112") == "order 4111111111111112"  # fails the Luhn check
    digits_in_hash = "ab4111111111111111cd"  # part of a hex word: not a card number
    assert mask_pans(digits_in_hash) == digits_in_hash
    assert mask_pans("phone 0044 20 7946 0958") == "phone 0044 20 7946 0958"


def test_customer_notification_carries_the_same_facts(markdown: str) -> None:
    letter = _section(markdown, "## Draft notification to customers", "## Evidence appendix")
    assert "Corner Shop Ltd" in letter
    assert "On Thu 28 May 2026, 20:26:40 UTC an outsider broke into" in letter  # when it started
    assert "On Thu 28 May 2026, 20:56:40 UTC they copied data out of it" in letter  # when data left
    assert "payment card numbers (3)" in letter and "e-mail addresses (120)" in letter
    assert "Cancel the payment card" in letter
    assert "changed the passwords of the 2 accounts involved [confirm before sending]" in letter
    assert "informed our card processor" in letter


def test_no_notification_when_no_customer_data_left() -> None:
    story = dataclasses.replace(breach_story(), data_at_risk=())
    doc = render_markdown(story, breach_timeline(), meta())
    assert "Draft notification" not in doc
    assert "No customer data was seen leaving your network." in doc


def test_every_claim_points_at_listed_evidence(page: str) -> None:
    cited = set(re.findall(r'href="#(E\d+)"', page))
    listed = set(re.findall(r'<tr id="(E\d+)"', page))
    assert cited and cited == listed
    appendix = _text(page)[_text(page).index("Evidence appendix"):]
    assert SHA in appendix and TOOL_SHA in appendix and "captures/demo-breach.pcap" in appendix
    assert "2026-05-28T20:25:40.000000Z" in appendix and "2026-05-28T21:11:40.000000Z" in appendix
    assert "wiretrail replay --db demo-out/wiretrail.db captures/demo-breach.pcap" in appendix
    assert "version 0.1.0" in appendix and "0 sealed file record(s)" in appendix


@needs_dot
def test_html_is_self_contained_with_pictures(page: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing fetched
    assert "<script" not in page and "@import" not in page and "url(" not in page.replace("url(#", "")
    svgs = re.findall(r"<svg.*?</svg>", page, flags=re.S)
    assert len(svgs) == 2
    timeline_svg, graph_svg = (htmllib.unescape(s) for s in svgs)
    assert "INC-3f2a9c" in timeline_svg and "INC-77b01e" in timeline_svg and "exfiltration" in timeline_svg
    for host in (ATTACKER, SHOP, FILES, C2, OFFICE, "t.exfil-example.net"):
        assert host in graph_svg
    assert "patient zero" in graph_svg and "Remote Services: SSH" in graph_svg
    assert "@page" in page and "@media print" in page


def test_report_is_deterministic() -> None:
    a = render_html(breach_story(), breach_timeline(), meta())
    b = render_html(breach_story(), breach_timeline(), meta())
    assert a == b


def test_json_is_the_story_and_timeline() -> None:
    doc = json.loads(render_json(breach_story(), breach_timeline(), meta()))
    assert [i["id"] for i in doc["incidents"]] == ["INC-3f2a9c", "INC-77b01e"]
    assert doc["incidents"][0]["patient_zero"] == SHOP
    assert doc["accounts"][0]["name"] == "admin" and doc["accounts"][0]["admin"] is True
    assert doc["data_at_risk"][0]["count"] == 3 and doc["data_at_risk"][0]["first_time"] == "2026-05-28T20:56:40.000000Z"
    assert len(doc["timeline"]) == len(breach_timeline())
    assert doc["report"]["wiretrail_version"] == "0.1.0"
    assert doc["captures"][0]["sha256"] == SHA


def test_empty_store_is_one_clear_error() -> None:
    empty = Story(first_ts_ns=None, last_ts_ns=None, incidents=(), accounts=(), data_at_risk=(), captures=(),
                  local_nets=())
    with pytest.raises(EmptyReportError, match=r"demo-out/wiretrail.db: nothing recorded between "
                                               r"2026-05-28T20:26:40.000000Z and the end"):
        render_html(empty, [], meta(since_ns=T0))
    with pytest.raises(EmptyReportError):
        render_markdown(empty, [], meta())


def test_traffic_without_attack_says_so() -> None:
    quiet = dataclasses.replace(breach_story(), incidents=(), accounts=(), data_at_risk=())
    page = _text(render_html(quiet, [], meta()))
    assert "No attack was found in the traffic recorded between" in page
    assert "Draft notification" not in page


def test_thousands_of_alerts_stay_readable() -> None:
    base = breach_story()
    outsider = base.incidents[0]
    many = [outsider] + [dataclasses.replace(outsider, id=f"INC-{n:06x}", title=f"Port scan from 198.18.{n // 250}.{n % 250}",
                                             severity=3, ongoing=False, alert_count=3)
                         for n in range(2999)]
    timeline = [TimelineEvent(T0 + n * S // 10, "alert", f"198.18.0.{n % 250}", SHOP, "Port scan", severity=3,
                              technique="T1046 Network Service Discovery", incident=f"INC-{n % 2999:06x}")
                for n in range(10_000)]
    story = dataclasses.replace(base, incidents=tuple(many))
    doc = render_markdown(story, timeline, meta())
    assert doc.count("\n### INC-") == 10  # the top incidents told in full
    summary = _section(doc, "## Summary for the owner", "## How they got in")
    assert len(summary) < 5000 and "more attacking address(es)" not in summary  # one attacker per incident here
    assert "Disconnect 192.168.1.20, 192.168.1.10 from" in summary
    assert "### 2990 more incident(s), summarised" in doc
    assert "more routine rows are not listed" in doc
    timeline_rows = _section(doc, "## Timeline", "## Computers involved").count("\n| Thu")
    assert timeline_rows == 150
    page = render_html(story, timeline, meta())
    assert len(page) < 3_000_000


def test_sparse_story_still_renders() -> None:
    """An incident with no stage, attacker, victim or sentence, one instant long, and no timeline:
    every format renders and says what it does not know."""
    from analysis.report import attack_layer, to_stix
    from analysis.story.model import Incident

    bare = Incident(id="INC-000001", title="Odd traffic", severity=3, first_ts_ns=T0, last_ts_ns=T0, ongoing=False,
                    insider=False, attackers=(), victims=(), patient_zero=None, patient_zero_reason=None, stages=(),
                    accounts=(), exfiltration=(), hosts=(), confidence="low", confidence_reasons=(), story=())
    story = Story(first_ts_ns=T0, last_ts_ns=T0 + S, incidents=(bare,), accounts=(), data_at_risk=(), captures=(),
                  local_nets=())
    md = render_markdown(story, [], meta())
    assert "### INC-000001: Odd traffic" in md and "Patient zero: none found" in md
    assert "No account needs a reset" in md and "Draft notification" not in md
    assert "<svg" in render_html(story, [], meta())
    assert json.loads(render_json(story, [], meta()))["incidents"][0]["id"] == "INC-000001"
    assert attack_layer(story)["techniques"] == []
    assert to_stix(story).objects[-1].type == "report"
