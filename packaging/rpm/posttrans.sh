#!/bin/sh
# %posttrans: after the whole transaction, when an upgrade's old files are gone: compile the
# bundled Python afresh, and restart bitshared if it runs, so the new version serves.
find /opt/bitshare -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true
/opt/bitshare/bin/python3 -m compileall -q -j 0 /opt/bitshare/lib >/dev/null 2>&1 || true
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
    systemctl try-restart bitshared.service >/dev/null 2>&1 || true
fi
exit 0
