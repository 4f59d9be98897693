"""Per-product trade-id bookkeeping: which ids were published, which are missing (pure).

Both exchanges number trades consecutively per product, so a jump in ids is a gap. Live frames,
heartbeats and REST backfill pages all pass through one `TradeIdTracker`, which decides what is
new (publish it), what is a duplicate (drop it) and which id ranges still need a backfill.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field


@dataclass
class TradeIdTracker:
    """`last` is the highest id seen; `missing` holds disjoint, sorted, inclusive id ranges below
    it that were never seen."""

    last: int | None = None
    missing: list[tuple[int, int]] = field(default_factory=list)

    def accept(self, trade_id: int) -> bool:
        """Record `trade_id`; True when it is new (publish it), False for a duplicate."""
        last = self.last
        if last is None or trade_id == last + 1:
            self.last = trade_id
            return True
        if trade_id > last:
            self.missing.append((last + 1, trade_id - 1))
            self.last = trade_id
            return True
        return self._fill(trade_id)

    def observe_latest(self, trade_id: int) -> bool:
        """The exchange says `trade_id` happened (heartbeat): ids after `last` up to it are
        missing. Returns True when this opened a gap."""
        if self.last is None:
            # Nothing published yet: trades before subscribing are not ours to publish.
            self.last = trade_id
            return False
        if trade_id <= self.last:
            return False
        self.missing.append((self.last + 1, trade_id))
        self.last = trade_id
        return True

    def _fill(self, trade_id: int) -> bool:
        index = bisect.bisect_right(self.missing, (trade_id, float("inf"))) - 1
        if index < 0:
            return False
        low, high = self.missing[index]
        if not low <= trade_id <= high:
            return False
        replacement = [r for r in ((low, trade_id - 1), (trade_id + 1, high)) if r[0] <= r[1]]
        self.missing[index : index + 1] = replacement
        return True

    @property
    def missing_count(self) -> int:
        return sum(high - low + 1 for low, high in self.missing)

    def abandon(self, low: int, high: int) -> int:
        """Give up on ids in [low, high] (the exchange no longer serves them); returns how many
        ids were dropped from `missing`."""
        kept: list[tuple[int, int]] = []
        dropped = 0
        for start, end in self.missing:
            if end < low or start > high:
                kept.append((start, end))
                continue
            dropped += min(end, high) - max(start, low) + 1
            kept.extend(r for r in ((start, low - 1), (high + 1, end)) if r[0] <= r[1])
        self.missing = kept
        return dropped
