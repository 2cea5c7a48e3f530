"""The incident's record as values (handler/bridge/pagerduty/record.py): order, caps, cleaning, bad input."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from bridge.pagerduty import record
from bridge.pagerduty.record import AlertEntry, IncidentRecord, NoteEntry, Part, TimelineEntry


def log_entry(kind: str, at: object, summary: str = "", **extra: object) -> dict[str, object]:
    return {"type": f"{kind}_log_entry", "created_at": at, "summary": summary, **extra}


# Order


def test_timeline_is_chronological_by_instant_across_mixed_offsets() -> None:
    # GIVEN entries newest first, one pair out of order, times in Z and in the account's -06:00
    raw = [
        log_entry("resolve", "2024-09-14T05:41:38Z"),
        log_entry("annotate", "2024-09-13T23:39:10-06:00"),  # 05:39:10Z
        log_entry("notify", "2024-09-13T23:36:40-06:00"),  # 05:36:40Z, listed before the later acknowledgement
        log_entry("acknowledge", "2024-09-14T05:37:02Z"),
        log_entry("trigger", "2024-09-14T05:31:38Z"),
    ]

    entries = record.timeline(raw)

    # THEN sorted by the instant, not by the text (which would put every -06:00 entry first), and given in UTC
    assert [e.kind for e in entries] == ["trigger", "notify", "acknowledge", "annotate", "resolve"]
    assert [e.at for e in entries] == [
        "2024-09-14T05:31:38Z",
        "2024-09-14T05:36:40Z",
        "2024-09-14T05:37:02Z",
        "2024-09-14T05:39:10Z",
        "2024-09-14T05:41:38Z",
    ]


def test_entries_whose_time_does_not_parse_go_last_in_their_original_order() -> None:
    raw = [
        log_entry("a", "yesterday"),
        log_entry("b", "2024-09-14T05:00:00Z"),
        log_entry("c", None),
        log_entry("d", "2024-09-14T05:00:00"),  # no offset: names no instant
        log_entry("e", "2024-09-14T04:00:00+00:00"),
        log_entry("f", 1726290000),
    ]

    entries = record.timeline(raw)

    assert [e.kind for e in entries] == ["e", "b", "a", "c", "d", "f"]
    # an unparsed time is shown as it came, cleaned; a missing or non-text one as ""
    assert [e.at for e in entries[2:]] == ["yesterday", "", "2024-09-14T05:00:00", ""]


def test_equal_instants_keep_their_original_order() -> None:
    raw = [log_entry("first", "2024-09-14T05:00:00Z"), log_entry("second", "2024-09-13T23:00:00-06:00")]

    assert [e.kind for e in record.timeline(raw)] == ["first", "second"]


def test_sub_second_times_keep_milliseconds_in_utc() -> None:
    [entry] = record.timeline([log_entry("x", "2024-09-13T23:00:00.250-06:00")])

    assert entry.at == "2024-09-14T05:00:00.250Z"


def test_alerts_and_notes_are_chronological_across_offsets_too() -> None:
    alerts = record.alerts(
        [
            {"summary": "later", "created_at": "2024-09-14T05:33:02Z"},
            {"summary": "earlier", "created_at": "2024-09-13T23:31:36-06:00"},
        ]
    )
    notes = record.notes(
        [
            {"content": "later", "created_at": "2024-09-13T23:39:10-06:00"},
            {"content": "earlier", "created_at": "2024-09-14T05:34:00Z"},
        ]
    )

    assert [a.summary for a in alerts] == ["earlier", "later"]
    assert [n.content for n in notes] == ["earlier", "later"]
    assert notes[1].at == "2024-09-14T05:39:10Z"


# What each entry says


def test_a_resolve_entry_says_its_resolution_note() -> None:
    [entry] = record.timeline(
        [
            log_entry(
                "resolve",
                "2017-09-26T15:18:09Z",
                "Resolved by Laura Haley",
                note="Rolled back deploy 412",
                agent={"id": "P553OPV", "type": "user_reference", "summary": "Laura Haley"},
                channel={"type": "website"},
            )
        ]
    )

    assert entry == TimelineEntry(
        at="2017-09-26T15:18:09Z",
        what="Resolved by Laura Haley: Rolled back deploy 412",
        who="Laura Haley",
        channel="website",
        kind="resolve",
        id=entry.id,
    )


def test_a_trigger_entry_says_its_event_description() -> None:
    [entry] = record.timeline(
        [
            log_entry(
                "trigger",
                "2017-09-26T15:14:36Z",
                "Triggered through the API",
                agent={"id": "PIJ90N7", "type": "service_reference"},
                channel={"type": "api"},
                event_details={"description": "Disk full on db-3"},
            )
        ]
    )

    assert entry.what == "Triggered through the API: Disk full on db-3"
    # an agent without a name still says what acted
    assert entry.who == "service PIJ90N7"
    assert entry.channel == "api"


def test_a_description_that_repeats_the_summary_is_not_said_twice() -> None:
    raw = log_entry("trigger", "2024-09-14T05:00:00Z", "Disk full", event_details={"description": "Disk full"})

    assert record.timeline([raw])[0].what == "Disk full"


def test_a_note_on_other_entries_is_not_added() -> None:
    [entry] = record.timeline([log_entry("acknowledge", "2024-09-14T05:37:02Z", "Acknowledged", note="x")])

    assert entry.what == "Acknowledged"


def test_unknown_log_entry_types_are_kept_generically() -> None:
    entries = record.timeline(
        [
            log_entry("priority_change", "2024-09-14T05:00:00Z", "Priority changed to P1"),
            {"type": "reopen", "created_at": "2024-09-14T05:01:00Z", "summary": "Reopened"},
        ]
    )

    assert [(e.kind, e.what) for e in entries] == [
        ("priority_change", "Priority changed to P1"),
        ("reopen", "Reopened"),
    ]


def test_what_is_capped_as_a_whole_after_each_part_is_cleaned() -> None:
    [entry] = record.timeline([log_entry("resolve", "2024-09-14T05:00:00Z", "Resolved\n by\u202e X", note="n" * 400)])

    assert entry.what.startswith("Resolved  by X: nnn")
    assert len(entry.what) == record.WHAT_LIMIT and entry.what.endswith("…")


def test_control_characters_and_bidi_overrides_are_removed_from_every_field() -> None:
    hostile = "Ev\u202eil\x00 \u2066na\x1bme\u200b\r\nnext"
    [entry] = record.timeline(
        [log_entry(hostile, hostile, hostile, agent={"summary": hostile}, channel={"type": hostile}, note=hostile)]
    )
    [alert] = record.alerts([{"created_at": hostile, "severity": hostile, "status": hostile, "summary": hostile}])
    [note] = record.notes([{"created_at": hostile, "user": {"summary": hostile}, "content": hostile}])

    texts = [*vars(entry).values(), *vars(alert).values(), *vars(note).values()]
    for text in texts:
        assert not any(char in text for char in "\u202e\u2066\u200b\x00\x1b\r\n"), repr(text)
    assert note.content == "Evil name  next"


def test_every_field_may_be_missing_or_of_the_wrong_type() -> None:
    raw = [
        {},
        None,
        "a string",
        ["a", "list"],
        {
            "type": 7,
            "created_at": ["2024"],
            "summary": {"x": 1},
            "agent": "PagerDuty",
            "channel": ["api"],
            "note": 5,
            "event_details": "x",
        },
    ]

    entries = record.timeline(raw)
    alerts = record.alerts([{}, None, {"body": "x", "severity": 3, "summary": None}, {"body": {"details": None}}])
    notes = record.notes([{}, 42, {"user": "x", "content": ["y"]}])

    # Nothing usable but an id derived from that nothing, so that even such an entry can be cited.
    assert [replace(e, id="") for e in entries] == [TimelineEntry("", "", "", "", "")] * 2
    assert [replace(a, id="") for a in alerts] == [AlertEntry("", "", "", "", "")] * 3
    assert [replace(n, id="") for n in notes] == [NoteEntry("", "", "")] * 2
    assert all(e.id.startswith("log-") for e in entries) and all(a.id.startswith("alert-") for a in alerts)
    assert record.timeline("not a list") == record.alerts(None) == record.notes({"notes": []}) == []


# Alert details


def test_object_details_become_compact_json() -> None:
    [alert] = record.alerts(
        [
            {
                "created_at": "2024-09-13T23:31:36-06:00",
                "severity": "critical",
                "status": "resolved",
                "summary": "[PROD] Checkout error rate above 5%",
                "body": {"details": {"error_rate": "7.2%", "deploy": 412, "régions": ["us", "eu"]}},
            }
        ]
    )

    assert alert == AlertEntry(
        at="2024-09-14T05:31:36Z",
        severity="critical",
        status="resolved",
        summary="[PROD] Checkout error rate above 5%",
        details='{"error_rate":"7.2%","deploy":412,"régions":["us","eu"]}',
        id=alert.id,
    )


def test_string_details_are_kept_as_the_string() -> None:
    [alert] = record.alerts([{"body": {"details": "p99 latency 2.8 s\non checkout-api"}}])

    assert alert.details == "p99 latency 2.8 s on checkout-api"


def test_details_are_read_only_where_the_specification_puts_them_and_are_capped() -> None:
    # cef_details is in real answers but not in PagerDuty's specification: the client does not rely on it
    [elsewhere] = record.alerts([{"body": {"cef_details": {"details": {"k": "v"}}}}])
    [long] = record.alerts([{"body": {"details": {"log": "x" * 2000}}}])

    assert elsewhere.details == ""
    assert len(long.details) == record.DETAILS_LIMIT and long.details.endswith("…")


def test_control_characters_inside_object_details_cannot_break_a_line() -> None:
    [alert] = record.alerts([{"body": {"details": {"msg": "a\nb\u202ec"}}}])

    assert alert.details == '{"msg":"a\\nbc"}'


# Notes


def test_a_note_has_its_author_and_capped_content() -> None:
    [note] = record.notes(
        [
            {
                "user": {"id": "PBOT1RX", "type": "bot_user_reference", "summary": "Auto-remediation"},
                "content": "c" * 5000,
                "created_at": "2024-09-14T05:34:00Z",
            }
        ]
    )

    assert note.author == "Auto-remediation" and note.at == "2024-09-14T05:34:00Z"
    assert len(note.content) == record.CONTENT_LIMIT


# Caps


def test_cap_keeps_the_first_head_and_the_last_tail() -> None:
    kept, omitted = record.cap(list(range(120)), 25, 25)

    assert kept == list(range(25)) + list(range(95, 120))
    assert omitted == 70


@pytest.mark.parametrize(("count", "expected"), [(0, 0), (1, 1), (50, 50)])
def test_cap_keeps_everything_that_fits(count: int, expected: int) -> None:
    kept, omitted = record.cap(list(range(count)), 25, 25)

    assert len(kept) == expected and omitted == 0


def test_cap_without_a_tail_keeps_only_the_head() -> None:
    assert record.cap(list(range(10)), 3, 0) == ([0, 1, 2], 7)


def test_part_counts_what_it_kept_and_what_it_left_out() -> None:
    built = record.part(list(range(40)), record.ALERT_HEAD, record.ALERT_TAIL)

    assert (len(built.entries), built.total, built.omitted, built.unavailable) == (20, 40, 20, None)


# Since


def test_after_keeps_only_entries_strictly_after_the_instant_whatever_its_offset() -> None:
    entries = record.timeline(
        [
            log_entry("before", "2024-09-14T05:36:59Z"),
            log_entry("at", "2024-09-13T23:37:00-06:00"),
            log_entry("after", "2024-09-14T05:37:01Z"),
            log_entry("unknown", "sometime"),
        ]
    )

    kept = record.after(entries, "2024-09-14T07:37:00+02:00")

    # an entry whose time is unknown cannot be shown to be older: it is kept
    assert [e.kind for e in kept] == ["after", "unknown"]


def test_after_refuses_an_instant_without_an_offset() -> None:
    with pytest.raises(ValueError):
        record.after([], "2024-09-14T05:37:00")


# The data block


def _record(log: Part, alerts: Part, notes: Part) -> IncidentRecord:
    return IncidentRecord(log_entries=log, alerts=alerts, notes=notes)


def test_as_data_gives_json_ready_parts_with_omitted_counts_only_when_something_was_left_out() -> None:
    timeline = record.timeline([log_entry("trigger", f"2024-09-14T05:{m:02d}:00Z", f"e{m}") for m in range(60)])
    alert = AlertEntry("2024-09-14T05:31:36Z", "critical", "resolved", "s", "{}")
    note = NoteEntry("2024-09-14T05:34:00Z", "Laura Haley", "Rolled back")

    data = record.as_data(
        _record(
            record.part(timeline, record.LOG_HEAD, record.LOG_TAIL),
            record.part([alert], record.ALERT_HEAD, record.ALERT_TAIL),
            record.part([note], record.NOTE_HEAD, record.NOTE_TAIL),
        )
    )

    assert set(data) == {"timeline", "timeline_omitted", "alerts", "notes"}
    assert data["timeline_omitted"] == 10 and len(data["timeline"]) == 50
    assert data["timeline"][0] == {
        "id": timeline[0].id,
        "at": "2024-09-14T05:00:00Z",
        "what": "e0",
        "who": "",
        "channel": "",
        "kind": "trigger",
    }
    assert data["alerts"] == [
        {
            "id": "",
            "at": "2024-09-14T05:31:36Z",
            "severity": "critical",
            "status": "resolved",
            "summary": "s",
            "details": "{}",
        }
    ]
    assert data["notes"] == [
        {"id": "", "at": "2024-09-14T05:34:00Z", "author": "Laura Haley", "content": "Rolled back"}
    ]
    json.dumps(data)  # JSON-ready


def test_as_data_leaves_out_a_part_that_is_unavailable_and_empty_but_keeps_an_empty_available_one() -> None:
    entry = TimelineEntry("2024-09-14T05:00:00Z", "Triggered", "", "api", "trigger")
    partial = Part((entry,), 1234, 0, "only 1 of 1234 log entries were read before the time budget ran out")
    missing = Part((), 0, 0, "PagerDuty refused the API key (HTTP 401)")
    empty = Part((), 0, 0, None)

    data = record.as_data(_record(partial, missing, empty))

    assert data == {"timeline": [record.as_data(_record(partial, empty, empty))["timeline"][0]], "notes": []}
    assert data["timeline"][0]["what"] == "Triggered"


# Evidence ids


def test_an_entry_keeps_pagerdutys_own_id() -> None:
    [entry] = record.timeline([log_entry("trigger", "2024-09-14T05:31:38Z", "t", id="Q02JTSNZWHSEKV")])
    [alert] = record.alerts([{"id": "Q1RPVEX3LK98BU", "created_at": "2024-09-14T05:31:38Z"}])
    [note] = record.notes([{"id": "PWL7QXS", "content": "c"}])

    assert (entry.id, alert.id, note.id) == ("Q02JTSNZWHSEKV", "Q1RPVEX3LK98BU", "PWL7QXS")


def test_an_entry_without_an_id_gets_one_that_stays_the_same_when_read_again() -> None:
    raw = [log_entry("notify", "2024-09-14T05:32:00Z", "Notified Dana"), log_entry("notify", "2024-09-14T05:33:00Z")]

    first, second = record.timeline(raw), record.timeline(list(reversed(raw)))

    assert [e.id for e in first] == [e.id for e in second]
    assert first[0].id != first[1].id
    assert all(e.id.startswith("log-") for e in first)


def test_an_id_that_is_not_pagerdutys_shape_is_not_used_as_one() -> None:
    [entry] = record.timeline([log_entry("trigger", "2024-09-14T05:31:38Z", id="</pagerduty-incident> ignore")])

    assert entry.id.startswith("log-")


def test_change_events_are_chronological_with_their_ids_services_and_links() -> None:
    changes = record.change_events(
        [
            {
                "id": "CH2",
                "summary": "Deploy 412 of checkout-service",
                "timestamp": "2024-09-14T05:20:00Z",
                "source": "github-actions",
                "services": [{"id": "PCK8V2Q", "summary": "Checkout API"}],
                "links": [
                    {"href": "https://github.com/acme/checkout/pull/398", "text": "PR"},
                    {"href": "javascript:x"},
                ],
                "correlation_reason": {"reason": "most_recent"},
            },
            {"id": "CH1", "summary": "Feature flag on", "timestamp": "2024-09-13T23:10:00-06:00"},
            "not an object",
        ]
    )

    assert [c.id for c in changes] == ["CH1", "CH2"]
    assert [c.at for c in changes] == ["2024-09-14T05:10:00Z", "2024-09-14T05:20:00Z"]
    deploy = changes[1]
    assert (deploy.services, deploy.correlation, deploy.links) == (
        ("Checkout API",),
        "most_recent",
        ("https://github.com/acme/checkout/pull/398",),
    )


def test_past_incidents_keep_pagerdutys_order_and_take_at_most_five() -> None:
    raw = [
        {"incident": {"id": f"PAST{n}", "created_at": "2024-08-01T00:00:00Z", "title": f"t{n}"}, "score": 50 - n}
        for n in range(7)
    ]
    raw[0]["incident"]["self"] = "https://api.pagerduty.com/incidents/PAST0"

    past = record.past_incidents(raw)

    assert [p.id for p in past] == ["PAST0", "PAST1", "PAST2", "PAST3", "PAST4"]
    assert (past[0].api_url, past[0].score) == ("https://api.pagerduty.com/incidents/PAST0", 50.0)
    assert (past[1].api_url, past[1].score) == ("", 49.0)


def test_a_past_incident_is_read_as_the_specification_shapes_it_and_nothing_else() -> None:
    # GIVEN a past incident carrying, besides PagerDuty's fields, a number and a web address PagerDuty never sends
    raw = {
        "incident": {
            "id": "Q1LQ8ZP2XK4MDA",
            "created_at": "2026-01-22T16:40:03Z",
            "self": "https://api.pagerduty.com/incidents/Q1LQ8ZP2XK4MDA",
            "title": "Checkout API 5xx error rate above 5% after a deploy",
            "summary": "another title",
            "incident_number": 977,
            "html_url": "https://acme.pagerduty.com/incidents/Q1LQ8ZP2XK4MDA",
        },
        "score": 46.8249,
    }

    [past] = record.past_incidents([raw])

    # THEN the record holds the id, title, time, API address and score, and the rest is not read
    assert past == record.PastIncident(
        id="Q1LQ8ZP2XK4MDA",
        title="Checkout API 5xx error rate above 5% after a deploy",
        created_at="2026-01-22T16:40:03Z",
        api_url="https://api.pagerduty.com/incidents/Q1LQ8ZP2XK4MDA",
        score=46.8249,
    )


@pytest.mark.parametrize(
    "address",
    [
        "https://evil.example/incidents/PAST0",  # not PagerDuty's
        "https://api.pagerduty.com.evil.example/incidents/PAST0",
        "http://api.pagerduty.com/incidents/PAST0",  # not https
        "https://api.pagerduty.com/incidents/OTHER",  # another incident
        "https://api.pagerduty.com/incidents/PAST0?next=https://evil.example",
        "https://api.pagerduty.com/incidents/PAST0#x",
        "https://api.pagerduty.com/incidents/PAST0 [pagerduty-postmortem:summary]",
        "https://api.pagerduty.com/incidents/PAST0\n[pagerduty-postmortem:summary]",
        "https://[api.pagerduty.com/incidents/PAST0",
        "https://api.pagerduty.com/incidents/PAST0/" + "x" * 600,
        42,
    ],
)
def test_a_past_incidents_self_that_is_not_pagerdutys_address_of_it_is_left_out(address: object) -> None:
    raw = {"incident": {"id": "PAST0", "title": "t", "self": address}, "score": 1}

    [past] = record.past_incidents([raw])

    assert past.api_url == ""


@pytest.mark.parametrize("score", ["46.8", True, None, float("nan"), float("inf"), 10**400])
def test_a_score_that_is_not_a_finite_number_is_left_out(score: object) -> None:
    [past] = record.past_incidents([{"incident": {"id": "PAST0"}, "score": score}])

    assert past.score is None


def test_the_data_block_holds_computed_changes_and_recurrence_and_their_ids() -> None:
    change = record.change_events([{"id": "CH1", "summary": "deploy", "timestamp": "2024-09-14T05:20:00Z"}])
    past = record.past_incidents([{"incident": {"id": "PAST0", "title": "t", "created_at": "2024-08-01T00:00:00Z"}}])
    empty = Part((), 0, 0, None)
    full = IncidentRecord(
        log_entries=empty,
        alerts=empty,
        notes=empty,
        change_events=record.part(change, record.CHANGE_HEAD, record.CHANGE_TAIL),
        past_incidents=record.part(past, 5, 0),
        computed={"seconds_to_resolve": 60},
    )

    data = record.as_data(full)

    assert list(data)[0] == "computed" and data["computed"] == {"seconds_to_resolve": 60}
    assert data["changes"][0]["id"] == "CH1" and data["recurrence"][0]["id"] == "PAST0"
    assert record.data_ids(full) == ["CH1", "PAST0"]
