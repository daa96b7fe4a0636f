#!/bin/sh
# %preun: when the package is erased (not upgraded), stop and disable bitshared, and remove the
# compiled Python (rpm does not know those files).
if [ "$1" -eq 0 ]; then
    if [ -d /run/systemd/system ]; then
        systemctl --no-reload disable --now bitshared.service >/dev/null 2>&1 || true
    fi
    find /opt/bitshare -name __pycache__ -type d -prune -exec rm -rf {} + 2>/dev/null || true
fi
exit 0
