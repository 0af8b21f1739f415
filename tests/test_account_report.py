"""`sipwatch scan` of CDR files reports per account (issue 7): the `accounts` section of `--json` and
of the text report; an address that used an account for a critical burst is among the offenders too."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from test_account_rules import SATELLITE, T0, UK, cdr


def test_scan_json_has_an_accounts_section(tmp_path: Path,
                                           run_cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    rows = [cdr(T0 + i * 10, number=SATELLITE, duration=600, src="198.51.100.7:5060") for i in range(6)]
    rows += [cdr(T0 + 4000 + i * 600, number=UK, duration=120, account="6002") for i in range(3)]
    rows += [cdr(T0 + 5000, number="6003", duration=30, account="6002")]  # an internal call
    rows += ['"","6001","x","from-internal","x","PJSIP/6001-1","","Dial","x","not a date","","",1,1,"ANSWERED",'
             '"DOCUMENTATION","1715162400.999",""']
    master = tmp_path / "Master.csv"
    master.write_text("\n".join(rows) + "\n")
    done = run_cli("scan", "--json", str(master))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    accounts = {a["account"]: a for a in report["accounts"]}
    fraud, ordinary = accounts["6001"], accounts["6002"]
    assert (fraud["calls"], fraud["answered"], fraud["countries"], fraud["decision"]) == (6, 6, [], "block")
    assert fraud["reason"].startswith("account_rules: critical: concurrent 6 calls at once")
    assert (ordinary["calls"], ordinary["answered"], ordinary["outside"], ordinary["countries"],
            ordinary["decision"], ordinary["reason"]) == (4, 4, 3, ["GB"], "none", "")
    assert [(o["ip"], o["decision"]) for o in report["offenders"]] == [("198.51.100.7", "ban")]
    assert report["bad_records"] == 1
    assert all(isinstance(a[k], t) for a in report["accounts"] for k, t in
               (("account", str), ("calls", int), ("answered", int), ("countries", list), ("decision", str),
                ("reason", str)))

    text = run_cli("scan", str(master)).stdout
    assert "2 account(s) with call activity" in text
    assert "6001  BLOCK  6 calls (6 answered, 6 outside" in text
    assert "1 broken CDR/CEL row(s) skipped" in text


def test_explain_shows_the_call_ids_and_the_broken_rows(tmp_path: Path,
                                                        run_cli: Callable[..., subprocess.CompletedProcess[str]]
                                                        ) -> None:
    master = tmp_path / "Master.csv"
    master.write_text(cdr(T0, src="198.51.100.7:5060") + "\n" + cdr(T0).replace(",57,", ",x,") + "\n")
    text = run_cli("explain", str(master)).stdout
    assert "kind=call_end ip=198.51.100.7 port=5060" in text and "channel='PJSIP/6001-" in text
    assert "1 broken CDR/CEL rows" in text and f"# broken {master}:2:" in text
