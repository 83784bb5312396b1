"""The worker: a loop (``loop``) over pieces of work (``pieces``), each answering
with the one report type (``report``). What each piece does lives in the package
it belongs to (the drip, the newsletter, the sign-up intake...); this package only
runs them in order and knows none of them by name."""
