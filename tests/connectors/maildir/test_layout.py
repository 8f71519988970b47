"""Maildir++ names and Dovecot's keyword format, checked against what Dovecot writes on disk."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from connectors.errors import TransientError
from connectors.maildir import folders, keywords


@pytest.mark.parametrize(
    ("folder", "directory"),
    [
        ("", ""),
        ("INBOX", ""),
        ("inbox", ""),
        ("Queues/Billing", ".Queues.Billing"),
        ("Queues.Billing", ".Queues.Billing"),  # "." is Maildir++'s only separator
        ("Queues/IT Support", ".Queues.IT Support"),
        ("Queues/Bestellungen-Übersicht", ".Queues.Bestellungen-&ANw-bersicht"),
        ("Queues/Rückfragen", ".Queues.R&APw-ckfragen"),
        ("Queues/R&D", ".Queues.R&-D"),
        ("Queues/日本語", ".Queues.&ZeVnLIqe-"),
    ],
)
def test_folder_names_are_dovecots_modified_utf7(folder: str, directory: str) -> None:
    assert folders.dir_name(folder) == directory
    if directory:
        assert folders.from_dir_name(directory) == folders.canonical(folder)
    else:
        assert folders.canonical(folder) == "INBOX"


def test_bad_folder_names() -> None:
    with pytest.raises(ValueError):
        folders.levels("Queues//Billing")
    assert folders.from_dir_name(".") is None
    assert folders.from_dir_name("..") is None
    assert folders.from_dir_name("cur") is None


# What Dovecot 2.3 writes into dovecot-keywords (maildir-keywords.c: "%u %s\n" per index).
DOVECOT_FILE = "0 $Forwarded\n1 $Priority_high\n3 NonJunk\n"


def test_keyword_file_reads_and_writes_dovecots_format(tmp_path: Path) -> None:
    table = keywords.parse(DOVECOT_FILE + "junk line\n27 TooFar\n")
    assert table == {0: "$Forwarded", 1: "$Priority_high", 3: "NonJunk"}
    assert keywords.render(table) == DOVECOT_FILE


def test_ensure_keeps_indexes_and_fills_the_first_gap(tmp_path: Path) -> None:
    (tmp_path / "dovecot-keywords").write_text(DOVECOT_FILE)
    found = keywords.ensure(tmp_path, ["$priority_HIGH", "$ticketd", "$Priority_low"])
    assert found == {"$priority_HIGH": 1, "$ticketd": 2, "$Priority_low": 4}
    assert (tmp_path / "dovecot-keywords").read_text() == (
        "0 $Forwarded\n1 $Priority_high\n2 $ticketd\n3 NonJunk\n4 $Priority_low\n"
    )
    assert not (tmp_path / "dovecot-keywords.lock").exists()


def test_a_full_table_leaves_the_keyword_out(tmp_path: Path) -> None:
    (tmp_path / "dovecot-keywords").write_text("".join(f"{i} k{i}\n" for i in range(26)))
    assert keywords.ensure(tmp_path, ["k3", "$ticketd"]) == {"k3": 3}


def test_a_held_lock_is_transient_and_a_stale_one_is_broken(tmp_path: Path) -> None:
    lock = tmp_path / "dovecot-keywords.lock"
    lock.write_text("")
    with pytest.raises(TransientError):
        keywords.ensure(tmp_path, ["$ticketd"])
    old = time.time() - keywords.STALE_LOCK_SECONDS - 10
    os.utime(lock, (old, old))
    assert keywords.ensure(tmp_path, ["$ticketd"]) == {"$ticketd": 0}
    assert not lock.exists()


def test_file_names_keep_flags_sorted() -> None:
    assert keywords.split_name("1700000000.M1P2Q3.host,S=120:2,Sba") == ("1700000000.M1P2Q3.host,S=120", "Sba")
    assert keywords.split_name("1700000000.M1P2Q3.host") == ("1700000000.M1P2Q3.host", "")
    assert keywords.join_name("k", "cSaFa") == "k:2,FSac"
    assert keywords.names_of("FSbdz", {1: "$Priority_high", 3: "NonJunk"}) == ["$Priority_high", "NonJunk"]
    assert keywords.system_flags("FSbd") == "FS"
