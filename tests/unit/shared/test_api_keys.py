"""The key file's options: names, quotas, webhooks; errors name the line and option, never
the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.api_keys import KeyRing, Quotas, owner_fingerprint, parse_key_line, read_key_entries

KEY = "k-3f9a0c55d1e2"
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_a_line_with_every_option() -> None:
    entry = parse_key_line(
        f"{KEY} max_queued=4 name=scans.team-1 pages_per_day=5000 max_pages_per_job=300 "
        "callback=https://hooks.example/ocr secret=" + SECRET,
        3,
    )
    assert entry.label == "scans.team-1"
    assert entry.quotas == Quotas(pages_per_day=5000, max_queued=4, max_pages_per_job=300)
    assert (entry.callback_url, entry.secret) == ("https://hooks.example/ocr", SECRET)
    assert KEY not in repr(entry) and "whsec" not in repr(entry)


def test_a_plain_key_is_unlimited_and_labelled_by_its_fingerprint() -> None:
    entry = parse_key_line(KEY, 1)
    assert entry.quotas == Quotas()
    owner = owner_fingerprint(KEY)
    assert owner is not None
    assert entry.label == f"key-{owner[:8]}"
    assert parse_key_line(f"  {KEY}  ", 9).label == entry.label  # stable: from the key alone
    assert KEY[:8] not in entry.label


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("name=a/b", "line 7: name= takes"),
        ("name=" + "n" * 65, "line 7: name= takes"),
        ("name=ü", "line 7: name= takes"),
        ("pages_per_day=0", "line 7: pages_per_day= must be a whole number of at least 1"),
        ("max_queued=-1", "line 7: max_queued= must be a whole number"),
        ("max_pages_per_job=2.5", "line 7: max_pages_per_job= must be a whole number"),
        ("max_queued=٣", "line 7: max_queued= must be a whole number"),  # a non-ASCII digit
        ("name=a name=b", "line 7: name= given twice"),
        ("quota=5", "line 7: after the key, only name=, callback=, secret=, pages_per_day="),
        ("pages_per_day", "line 7: after the key, only"),
    ],
)
def test_a_bad_option_names_its_line_and_option_never_the_key(options: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message) as refused:
        parse_key_line(f"{KEY} {options}", 7)
    assert KEY not in str(refused.value)


def test_names_are_unique_in_the_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"# teams\n{KEY} name=scans\n\nk-other name=scans pages_per_day=9\n")
    with pytest.raises(ValueError, match=r"^line 4: name=scans is taken \(line 2\)$") as taken:
        read_key_entries(keys)
    assert KEY not in str(taken.value) and "k-other" not in str(taken.value)
    # a key given again (the later line wins) is no clash with itself
    keys.write_text(f"{KEY} name=scans\n{KEY} name=scans pages_per_day=9\nk-other\n")
    entries = read_key_entries(keys)
    assert entries[KEY].quotas.pages_per_day == 9


def test_the_ring_finds_names_and_quotas_by_owner(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"{KEY} name=scans max_queued=2\nk-other\n")
    ring = KeyRing(read_key_entries(keys))
    assert ring.label(owner_fingerprint(KEY)) == "scans"
    assert ring.quotas(owner_fingerprint(KEY)).max_queued == 2
    gone = owner_fingerprint("k-removed-from-the-file")
    assert gone is not None
    assert ring.label(gone) == f"key-{gone[:8]}"  # a job's key no longer in the file
    assert ring.quotas(gone) == Quotas()
    assert ring.label(None) == "anonymous"
