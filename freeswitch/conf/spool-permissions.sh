#!/bin/sh
# The spool: FreeSWITCH records callers into it and plays the secretary's replies from it; the container
# (uid 10001) writes replies and reads recordings. Run once as root on the FusionPBX host.
set -eu
SPOOL=/var/lib/freeswitch/recordings/voiceai
mkdir -p "$SPOOL/in" "$SPOOL/out" "$SPOOL/cache"
chown -R www-data:www-data "$SPOOL"        # FusionPBX runs FreeSWITCH as www-data
chmod -R 2775 "$SPOOL"                      # group-writable, new files keep the group
setfacl -R -m u:10001:rwx -m d:u:10001:rwx "$SPOOL" 2>/dev/null || chmod -R o+rwx "$SPOOL"
echo "spool ready: $SPOOL"
