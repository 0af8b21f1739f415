"""CDR tables in MariaDB and PostgreSQL as a live source: rows become Master.csv lines, read once each,
in the order calls end, across restarts and outages; against real servers started by the tests."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

import dbservers
from sipwatch.sources import SourceError, follower, redact
from sipwatch.sources.cdrdb import CSV_COLUMNS, CdrDbError, CdrDbFollower, Target, render
from sipwatch.sources.tail import Position


# -- the URL -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("url", "scheme", "port", "table"), [
    ("mysql://sw:pw@db.example/asteriskcdrdb", "mysql", 3306, "cdr"),
    ("mariadb://sw:pw@127.0.0.1:3307/asteriskcdrdb?table=cdr_2024", "mysql", 3307, "cdr_2024"),
    ("postgresql://sw:pw@127.0.0.1/asterisk", "postgresql", 5432, "cdr"),
    ("postgres://sw@127.0.0.1/asterisk?table=public.cdr&every=5", "postgresql", 5432, "public.cdr"),
])
def test_a_database_url_names_server_database_and_table(url: str, scheme: str, port: int, table: str) -> None:
    target = Target.parse(url)
    assert (target.scheme, target.port, target.table) == (scheme, port, table)


@pytest.mark.parametrize(("url", "problem"), [
    ("mysql://sw:pw@db.example", "expected mysql://"),  # no database
    ("oracle://sw:pw@db/x", "expected mysql://"),
    ("mysql://sw:pw@db/x?table=cdr;drop", "not a plain table name"),
    ("mysql://sw:pw@db/x?every=soon", "could not convert"),
])
def test_a_malformed_database_url_is_a_clear_error_without_the_secret(url: str, problem: str) -> None:
    with pytest.raises(CdrDbError, match=problem) as caught:
        Target.parse(url)
    assert ":pw@" not in str(caught.value)
    assert isinstance(caught.value, SourceError)


def test_the_secret_of_a_source_is_never_shown() -> None:
    assert redact("postgresql://sw:s3cret@db/asterisk") == "postgresql://sw:***@db/asterisk"
    assert redact("ami://sipwatch:s3cret@127.0.0.1:5038") == "ami://sipwatch:***@127.0.0.1:5038"
    assert redact("/var/log/asterisk/full") == "/var/log/asterisk/full"


# -- a row as a Master.csv line ------------------------------------------------------------------
def test_a_row_reads_like_a_master_csv_line() -> None:
    line, cursor = render({
        "calldate": datetime(2026, 3, 4, 22, 10, 5), "clid": '"Reception" <6001>', "src": "6001",
        "dst": "00882123456", "dcontext": "from-internal", "channel": "PJSIP/6001-00000001",
        "dstchannel": "PJSIP/carrier-00000002", "lastapp": "Dial", "lastdata": "PJSIP/00882123456@carrier,60",
        "duration": 75, "billsec": 60, "disposition": "ANSWERED", "amaflags": 3, "accountcode": "",
        "uniqueid": "1772662205.1", "userfield": "src=203.0.113.9:5060", "linkedid": "1772662205.1", "sequence": 4,
    })
    row = next(csv.reader([line.decode()]))
    fields = dict(zip(CSV_COLUMNS, row, strict=True))
    assert fields["clid"] == '"Reception" <6001>'  # quotes inside doubled, as cdr_csv writes them
    assert (fields["start"], fields["answer"], fields["end"]) == (
        "2026-03-04 22:10:05", "2026-03-04 22:10:20", "2026-03-04 22:11:20")
    assert (fields["duration"], fields["billsec"], fields["amaflags"]) == ("75", "60", "DOCUMENTATION")
    assert fields["userfield"] == "src=203.0.113.9:5060"
    assert line.count(b",75,60,") == 1  # the numbers are bare
    assert cursor.end == datetime(2026, 3, 4, 22, 11, 20)


def test_an_unanswered_call_has_no_answer_time() -> None:
    line, _ = render({"calldate": "2026-03-04 22:10:05", "duration": 20, "billsec": 0, "disposition": "NO ANSWER",
                      "uniqueid": "1.2"})
    assert dict(zip(CSV_COLUMNS, next(csv.reader([line.decode()])), strict=True))["answer"] == ""


def test_a_line_break_in_a_field_stays_on_one_line() -> None:
    line, _ = render({"calldate": "2026-03-04 22:10:05", "clid": '"evil\n2026-01-01" <1>', "uniqueid": "1.3"})
    assert line.count(b"\n") == 1


# -- against real servers ------------------------------------------------------------------------
@pytest.fixture(params=["mariadb", "postgresql"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dbservers.Server]:
    start = getattr(dbservers, request.param)
    with start(tmp_path) as found:
        yield found


def _read(source: CdrDbFollower) -> list[dict[str, str]]:
    source._next_query = 0  # do not wait for the poll interval
    rows: list[dict[str, str]] = []
    for chunk in source.read():
        for row in csv.reader(chunk.data.decode().splitlines()):
            rows.append(dict(zip(CSV_COLUMNS, row, strict=True)))
    return rows


def _call(server: dbservers.Server, uniqueid: str, start: str, seconds: int, dst: str = "00882123456") -> None:
    server.insert(calldate=start, src="6001", dst=dst, channel="PJSIP/6001-0000001", duration=seconds,
                  billsec=max(0, seconds - 5), disposition="ANSWERED", amaflags=3, uniqueid=uniqueid,
                  linkedid=uniqueid, userfield="src=203.0.113.9:5060")


def test_new_rows_are_read_once_in_the_order_calls_end(server: dbservers.Server) -> None:
    source = CdrDbFollower(server.url())
    assert _read(source) == []
    _call(server, "100.1", "2026-03-04 10:00:00", 30)
    _call(server, "100.2", "2026-03-04 10:00:10", 5)
    assert [r["uniqueid"] for r in _read(source)] == ["100.2", "100.1"]  # 10:00:15 before 10:00:30
    assert _read(source) == []
    source.close()


def test_a_long_call_that_began_earlier_is_not_missed(server: dbservers.Server) -> None:
    """Asterisk inserts at the call's end with calldate = its beginning: rows come out of calldate order."""
    source = CdrDbFollower(server.url())
    _call(server, "200.1", "2026-03-04 10:05:00", 10)
    assert [r["uniqueid"] for r in _read(source)] == ["200.1"]
    _call(server, "200.2", "2026-03-04 09:10:00", 3600)  # began an hour earlier, ended after 200.1
    assert [r["uniqueid"] for r in _read(source)] == ["200.2"]
    source.close()


def test_a_restart_resumes_where_it_stopped(server: dbservers.Server) -> None:
    first = CdrDbFollower(server.url())
    _call(server, "300.1", "2026-03-04 11:00:00", 10)
    assert len(_read(first)) == 1
    saved = first.position
    first.close()
    assert saved is not None
    _call(server, "300.2", "2026-03-04 11:00:05", 10)
    again = CdrDbFollower(server.url(), saved)
    assert [r["uniqueid"] for r in _read(again)] == ["300.2"]
    again.close()


def test_from_the_end_skips_the_history(server: dbservers.Server) -> None:
    _call(server, "400.1", "2026-03-04 12:00:00", 10)
    source = follower(server.url(), None, True)
    assert isinstance(source, CdrDbFollower)
    assert _read(source) == []
    _call(server, "400.2", "2026-03-04 12:00:30", 10)
    assert [r["uniqueid"] for r in _read(source)] == ["400.2"]
    source.close()


def test_a_row_still_settling_waits_for_the_next_query(server: dbservers.Server) -> None:
    now = datetime(2026, 3, 4, 13, 0, 0)
    source = CdrDbFollower(server.url(settle=5), clock=lambda: now)
    _call(server, "500.1", "2026-03-04 12:59:50", 8)  # ended 2 s ago: another row may still come for that second
    assert _read(source) == []
    now = datetime(2026, 3, 4, 13, 0, 10)
    assert [r["uniqueid"] for r in _read(source)] == ["500.1"]
    source.close()


def test_a_wrong_password_is_a_clear_problem_without_the_secret(server: dbservers.Server) -> None:
    source = CdrDbFollower(server.url(password="not-the-password"))
    assert _read(source) == []
    assert source.problem is not None and "sipwatch" in source.problem
    assert "not-the-password" not in source.problem
    source.close()


def test_a_database_that_goes_down_loses_nothing(server: dbservers.Server) -> None:
    source = CdrDbFollower(server.url())
    _call(server, "600.1", "2026-03-04 14:00:00", 10)
    assert len(_read(source)) == 1
    server.stop()
    assert _read(source) == []
    assert source.problem is not None
    server.start()
    _call(server, "600.2", "2026-03-04 14:00:30", 10)
    source._backoff = 0
    assert [r["uniqueid"] for r in _read(source)] == ["600.2"]
    assert source.problem is None
    source.close()


def test_a_table_that_is_not_a_cdr_table_is_a_clear_problem(server: dbservers.Server) -> None:
    source = CdrDbFollower(server.url(table="nosuchtable"))
    assert _read(source) == []
    assert source.problem is not None and "nosuchtable" in source.problem
    source.close()


def test_positions_are_kept_in_the_cursor_text(server: dbservers.Server) -> None:
    source = CdrDbFollower(server.url())
    _call(server, "700.1", "2026-03-04 15:00:00", 10)
    _read(source)
    assert source.position == Position(server.url(), 0, 0, 0, "2026-03-04 15:00:10|700.1|0", 1)
    source.close()
