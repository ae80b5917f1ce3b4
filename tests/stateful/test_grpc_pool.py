"""The gRPC channel pool under membership churn and calls, against a model (no network).

Channels are plain objects counted open and closed. After every step: no channel is closed
twice, a channel is never closed while a call uses it, and no call gets a closed channel; after
a sync, every member has an open channel and a non-member's channel is open only while in use.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import balancekit as bk
from balancekit.integrations._grpc_pool import ChannelPool, Entry

ADDRESSES = [f"10.3.0.{i}:50051" for i in range(1, 6)]


class FakeChannel:
    def __init__(self, address: str) -> None:
        self.address = address
        self.closed = 0


class PoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.lb = bk.RoundRobin()
        self.opened: list[FakeChannel] = []
        self.pool: ChannelPool[FakeChannel] = ChannelPool(self.lb, self._open, sweep=3600)
        self.held: list[Entry[FakeChannel]] = []
        self.synced = False

    def _open(self, address: str) -> FakeChannel:
        channel = FakeChannel(address)
        self.opened.append(channel)
        return channel

    def _close(self, channels: list[FakeChannel]) -> None:
        for channel in channels:
            channel.closed += 1

    @rule(address=st.sampled_from(ADDRESSES))
    def add(self, address: str) -> None:
        if address not in self.lb:
            self.lb.add(address)
            self.synced = False

    @rule(address=st.sampled_from(ADDRESSES))
    def remove(self, address: str) -> None:
        if address in self.lb:
            self.lb.remove(address)
            self.synced = False

    @rule(address=st.sampled_from(ADDRESSES))
    def acquire(self, address: str) -> None:
        entry = self.pool.acquire(address)
        assert entry.channel.closed == 0, "a call got a closed channel"
        assert entry.address == address
        self.held.append(entry)
        if address not in self.lb:  # a pick racing a removal: closed by the next sync
            self.synced = False

    @precondition(lambda self: self.held)
    @rule(index=st.integers(min_value=0))
    def release(self, index: int) -> None:
        entry = self.held.pop(index % len(self.held))
        closing = self.pool.release(entry)
        if closing is not None:
            assert closing is entry.channel
            assert all(held.channel is not closing for held in self.held)
            self._close([closing])

    @rule()
    def sync(self) -> None:
        closing = self.pool.sync()
        for channel in closing:
            assert all(held.channel is not channel for held in self.held)
        self._close(closing)
        self.synced = True

    @invariant()
    def closed_at_most_once_and_never_in_use(self) -> None:
        assert all(channel.closed <= 1 for channel in self.opened)
        assert all(entry.channel.closed == 0 for entry in self.held)

    @invariant()
    def after_sync_members_have_channels_and_leavers_only_in_use(self) -> None:
        if not self.synced:
            return
        open_addresses = set(self.pool.addresses())
        members = {endpoint.address for endpoint in self.lb.endpoints}
        in_use = {entry.address for entry in self.held}
        assert members <= open_addresses
        assert open_addresses <= members | in_use

    def teardown(self) -> None:
        self._close(self.pool.close())
        # every channel ever opened is closed exactly once, whatever was still held
        assert all(channel.closed == 1 for channel in self.opened)


TestPool = PoolMachine.TestCase
TestPool.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
