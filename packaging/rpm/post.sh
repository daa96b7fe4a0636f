#!/bin/sh
# %post: on a fresh install, apply the distribution's preset for bitshared (Fedora and RHEL
# policy: services are enabled only where the preset says so; `systemctl enable --now bitshared`
# otherwise). Compiling the Python and restarting on upgrade wait for %posttrans.
if [ "$1" -eq 1 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload preset bitshared.service >/dev/null 2>&1 || true
fi
exit 0
