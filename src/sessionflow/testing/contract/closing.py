"""Closing a manager: ``closed`` tells whether :meth:`close` began, leaving the ``with`` block closes it, and closing
again changes nothing."""

from __future__ import annotations

from sessionflow.testing.contract._support import ContractSuite, MakeManager


class TestClosing(ContractSuite):
    def test_closed_tells_whether_the_manager_was_closed(self, make_manager: MakeManager) -> None:
        mgr = make_manager()
        assert mgr.closed is False
        mgr.create(performer_id="u1")
        assert mgr.closed is False
        mgr.close()
        assert mgr.closed is True
        mgr.close()  # idempotent
        assert mgr.closed is True

    def test_leaving_the_with_block_closes_the_manager(self, make_manager: MakeManager) -> None:
        with make_manager() as mgr:
            mgr.create(performer_id="u1")
            assert not mgr.closed
        assert mgr.closed
