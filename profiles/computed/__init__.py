"""Computed traits: user-defined aggregations of a profile's events (sql.py compiles one into a
set-based statement; services.py writes the values into Profile.computed per pipeline batch,
on backfill and on window expiry) and the built-in traits (builtin.py lists them; the
scheduled ones — RFM, average order value, days since last order, engagement score — are
written hourly by services.builtin_traits_refresh)."""
