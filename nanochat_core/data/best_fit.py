"""The best-fit pick both packing loaders make (nanochat's nanochat/dataloader.py and scripts/chat_sft.py): pretraining documents and SFT conversations.

Items wait in a buffer sorted by (length, arrival). To fill the rest of a row the packer takes the
longest item that fits whole, the earliest among equals; when none fits, pretraining crops the
shortest (earliest among equals) and SFT pads instead. Both picks are O(log n) bisections.
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right

# Sort key = (length << _SHIFT) | arrival: one int comparison orders by length, then by arrival.
_SHIFT = 40
_ARRIVAL_MASK = (1 << _SHIFT) - 1


class BestFitBuffer:
    """Items with a length, in arrival order; `pop_*` remove and return them."""

    def __init__(self):
        self.keys: list[int] = []
        self.items: dict[int, object] = {}  # arrival -> item (dicts keep insertion = arrival order)
        self.arrivals = 0

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, length: int, item) -> None:
        arrival = self.arrivals
        self.arrivals += 1
        self.items[arrival] = item
        key = (length << _SHIFT) | arrival
        # Items arrive in increasing arrival order, so equal lengths stay sorted by it.
        if not self.keys or key > self.keys[-1]:
            self.keys.append(key)
        else:
            self.keys.insert(bisect_left(self.keys, key), key)

    def pop_longest_fitting(self, remaining: int):
        """The longest item of length <= remaining (earliest among equals), or None."""
        keys = self.keys
        i = bisect_right(keys, (remaining << _SHIFT) | _ARRIVAL_MASK)
        if not i:
            return None
        # keys[i-1] has the best length but the latest arrival: go to its first equal.
        j = bisect_left(keys, (keys[i - 1] >> _SHIFT) << _SHIFT, 0, i)
        return self.items.pop(keys.pop(j) & _ARRIVAL_MASK)

    def pop_shortest(self):
        """The shortest item (earliest among equals)."""
        return self.items.pop(self.keys.pop(0) & _ARRIVAL_MASK)

    def in_arrival_order(self) -> list:
        return list(self.items.values())
