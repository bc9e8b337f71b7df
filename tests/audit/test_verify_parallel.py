"""`verify --jobs 2` splits the chain between processes and links the pieces."""

from __future__ import annotations

import pytest

from tests.audit.conftest import audit, make_activity
from yakuba.audit import verify
from yakuba.directory.models import User


@pytest.mark.django_db(transaction=True)
def test_it_verifies_in_two_processes(alice: User, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verify, "PARALLEL_MINIMUM", 2)
    make_activity(alice, 9)
    audit("checkpoint")
    audit("seal")
    out = audit("verify", "--jobs", "2")
    assert "audit log OK: 10 seals verified (seq 1–10)" in out
    assert "1 checkpoints, last at seq 9" in out


def test_it_finds_a_break_at_the_boundary_between_pieces() -> None:
    """Each piece checks itself; a seal that does not follow the previous piece's last
    hash is still named (pure chain code, no database)."""
    from yakuba.audit.chain import GENESIS_HASH, check_segment, entry_hash, link_segments

    rows, head = [], GENESIS_HASH
    for seq in range(1, 7):
        canonical = f'{{"n":{seq}}}'
        rows.append((seq, head, entry_hash(head, canonical), seq, (head + canonical).encode()))
        head = rows[-1][2]
    first = check_segment(rows[:3], first_seq=1, prev_hash=GENESIS_HASH)
    assert link_segments([first, check_segment(rows[3:], first_seq=4, prev_hash=None)]) is None
    del rows[3]  # seq 4 gone; 5 and 6 re-numbered as if nothing happened
    rows = [(4, *rows[3][1:]), (5, *rows[4][1:])]
    problem = link_segments([first, check_segment(rows, first_seq=4, prev_hash=None)])
    assert problem is not None
    assert problem.seq == 4
    assert "chain link is broken" in problem.message
