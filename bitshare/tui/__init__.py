"""``bitshare-admin``: the live admin console (Textual). The app takes its data sources as
arguments (:mod:`bitshare.tui.data`), so tests drive it with real daemons or fixed data."""
