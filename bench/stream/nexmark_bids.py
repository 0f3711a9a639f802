"""The bids every side of bench/stream generates alike (as crates/sluice-stream/examples/
nexmark_windows.rs does): a 64-bit LCG, event time from 10 s, one bid per ms, 1,000 auctions."""

MASK = (1 << 64) - 1


def bids(n):
    """n bids as (event time ms, auction, price)."""
    state, out = 42, []
    for t in range(10_000, n + 10_000):
        state = (state * 6364136223846793005 + 1442695040888963407) & MASK
        auction = (state >> 33) % 1000
        state = (state * 6364136223846793005 + 1442695040888963407) & MASK
        price = (state >> 33) % 10000
        out.append((t, auction, price))
    return out
