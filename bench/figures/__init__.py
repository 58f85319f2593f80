"""One module per figure; each ``measure(sizes)`` returns the figures it produced."""
