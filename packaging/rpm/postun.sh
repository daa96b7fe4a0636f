#!/bin/sh
# %postun: reload systemd. On erase, delete the state, the tokens bitshare wrote and the runtime
# directory (rpm has no purge; an edited bitshare.toml is kept by rpm as .rpmsave). The system
# user and group stay, as Fedora's guidelines ask.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
fi
if [ "$1" -eq 0 ]; then
    rm -rf /var/lib/bitshare /run/bitshare
    rm -f /etc/bitshare/tokens.toml
fi
exit 0
