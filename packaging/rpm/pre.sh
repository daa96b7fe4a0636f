#!/bin/sh
# Before the files are unpacked: the bitshare user and group must exist, because
# /etc/bitshare/bitshare.toml is unpacked with group bitshare.
set -e
if true; then  # %pre: on install and on upgrade
    if ! getent passwd bitshare >/dev/null; then
        if command -v systemd-sysusers >/dev/null 2>&1; then
            echo 'u bitshare - "bitshare GPU sharing daemon" /var/lib/bitshare /usr/sbin/nologin' | systemd-sysusers -
        else
            useradd --system --user-group --home-dir /var/lib/bitshare --no-create-home \
                --shell /usr/sbin/nologin --comment "bitshare GPU sharing daemon" bitshare
        fi
    fi
fi
exit 0
